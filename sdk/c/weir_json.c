/* weir_json.c — the strict JSON reader (validation into a tape of tokens) and access to the
 * parsed document. */
#include "weir_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

/* =============================================================================================
 * JSON reader: validation into a tape of tokens
 * ============================================================================================= */

typedef struct jparser {
    weir_json *doc;
    const uint8_t *s;
    size_t len;
    size_t i;
    int depth;
    const char *msg;
    size_t at;
} jparser;

static bool jfail(jparser *ps, const char *msg, size_t at) {
    if (ps->msg == NULL) {
        ps->msg = msg;
        ps->at = at;
    }
    return false;
}

static uint32_t tok_new(jparser *ps, uint8_t kind, size_t start) {
    weir_json *d = ps->doc;
    if (d->ntoks == d->cap) {
        if (d->cap >= UINT32_MAX / 2) {
            jfail(ps, "document too large", start);
            return UINT32_MAX;
        }
        uint32_t cap = d->cap ? d->cap * 2 : 64;
        weir_json_token *t = (weir_json_token *)realloc(d->toks, (size_t)cap * sizeof *t);
        if (t == NULL) {
            jfail(ps, "out of memory", start);
            return UINT32_MAX;
        }
        d->toks = t;
        d->cap = cap;
    }
    uint32_t k = d->ntoks++;
    weir_json_token *t = &d->toks[k];
    t->start = (uint32_t)start;
    t->end = (uint32_t)start;
    t->next = k + 1;
    t->count = 0;
    t->kind = kind;
    t->flags = 0;
    return k;
}

static void skip_ws(jparser *ps) {
    while (ps->i < ps->len) {
        uint8_t c = ps->s[ps->i];
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') break;
        ps->i++;
    }
}

static int hex4(const uint8_t *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* A \uXXXX escape at s[i] (the 'u'); on success *i is after it and *cp the code point. */
static bool parse_u_escape(jparser *ps, size_t *i, uint32_t *cp) {
    if (ps->len - *i < 5) return jfail(ps, "EOF while parsing a string", ps->len);
    int n = hex4(ps->s + *i + 1);
    if (n < 0) return jfail(ps, "invalid escape", *i);
    *i += 5;
    if (n >= 0xDC00 && n <= 0xDFFF) return jfail(ps, "lone leading surrogate in hex escape", *i);
    if (n >= 0xD800 && n <= 0xDBFF) {
        /* A leading surrogate must be followed by a trailing one, as `\uXXXX`. */
        if (*i >= ps->len) return jfail(ps, "EOF while parsing a string", ps->len);
        if (ps->s[*i] != '\\') return jfail(ps, "unexpected end of hex escape", *i);
        if (*i + 1 >= ps->len) return jfail(ps, "EOF while parsing a string", ps->len);
        if (ps->s[*i + 1] != 'u') return jfail(ps, "unexpected end of hex escape", *i + 1);
        *i += 1;
        if (ps->len - *i < 5) return jfail(ps, "EOF while parsing a string", ps->len);
        int lo = hex4(ps->s + *i + 1);
        if (lo < 0) return jfail(ps, "invalid escape", *i);
        *i += 5;
        if (lo < 0xDC00 || lo > 0xDFFF) return jfail(ps, "lone leading surrogate in hex escape", *i);
        *cp = 0x10000 + (((uint32_t)n - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        return true;
    }
    *cp = (uint32_t)n;
    return true;
}

/* A string at s[i] == '"': token over its content. */
static bool parse_string(jparser *ps) {
    size_t i = ps->i + 1;
    uint32_t t = tok_new(ps, WEIR_JSON_STRING, i);
    if (t == UINT32_MAX) return false;
    const uint8_t *s = ps->s;
    uint8_t flags = 0;
    for (;;) {
        /* Fast path: plain ASCII. */
        while (i < ps->len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
        if (i >= ps->len) return jfail(ps, "EOF while parsing a string", ps->len);
        uint8_t c = s[i];
        if (c == '"') break;
        if (c == '\\') {
            flags |= TOK_ESCAPED;
            if (i + 1 >= ps->len) return jfail(ps, "EOF while parsing a string", ps->len);
            uint8_t e = s[i + 1];
            if (e == 'u') {
                size_t j = i + 1;
                uint32_t cp;
                if (!parse_u_escape(ps, &j, &cp)) return false;
                i = j;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                i += 2;
            } else {
                return jfail(ps, "invalid escape", i + 1);
            }
        } else if (c < 0x20) {
            return jfail(ps, "control character (\\u0000-\\u001F) found while parsing a string", i);
        } else {
            size_t bad, n = weir__utf8_seq(s + i, s + ps->len, &bad);
            if (n == 0) return jfail(ps, "invalid unicode code point", i);
            i += n;
        }
    }
    ps->doc->toks[t].end = (uint32_t)i;
    ps->doc->toks[t].flags = flags;
    ps->i = i + 1;
    return true;
}

static bool parse_literal(jparser *ps, const char *word, uint8_t kind) {
    size_t n = strlen(word);
    size_t start = ps->i;
    for (size_t k = 0; k < n; k++) {
        if (start + k >= ps->len) return jfail(ps, WEIR__ERR_EOF_VALUE, ps->len);
        if (ps->s[start + k] != (uint8_t)word[k]) return jfail(ps, "expected ident", start + k);
    }
    uint32_t t = tok_new(ps, kind, start);
    if (t == UINT32_MAX) return false;
    ps->doc->toks[t].end = (uint32_t)(start + n);
    ps->i = start + n;
    return true;
}

static bool parse_value(jparser *ps);

/* An array or object at s[i]. */
static bool parse_container(jparser *ps, bool object) {
    uint8_t close = object ? '}' : ']';
    const char *eof = object ? "EOF while parsing an object" : "EOF while parsing a list";
    if (++ps->depth > WEIR_JSON_MAX_DEPTH) return jfail(ps, "recursion limit exceeded", ps->i);
    uint32_t t = tok_new(ps, object ? WEIR_JSON_OBJECT : WEIR_JSON_ARRAY, ps->i);
    if (t == UINT32_MAX) return false;
    uint32_t count = 0;
    ps->i++;
    skip_ws(ps);
    if (ps->i < ps->len && ps->s[ps->i] == close) {
        ps->i++;
    } else {
        for (;;) {
            if (object) {
                skip_ws(ps);
                if (ps->i >= ps->len) return jfail(ps, eof, ps->len);
                if (ps->s[ps->i] != '"') return jfail(ps, "key must be a string", ps->i);
                if (!parse_string(ps)) return false;
                skip_ws(ps);
                if (ps->i >= ps->len) return jfail(ps, eof, ps->len);
                if (ps->s[ps->i] != ':') return jfail(ps, "expected `:`", ps->i);
                ps->i++;
            }
            if (!parse_value(ps)) return false;
            count++;
            skip_ws(ps);
            if (ps->i >= ps->len) return jfail(ps, eof, ps->len);
            uint8_t c = ps->s[ps->i];
            if (c == ',') {
                ps->i++;
                skip_ws(ps);
                if (ps->i < ps->len && ps->s[ps->i] == close) return jfail(ps, "trailing comma", ps->i);
                continue;
            }
            if (c == close) {
                ps->i++;
                break;
            }
            return jfail(ps, object ? "expected `,` or `}`" : "expected `,` or `]`", ps->i);
        }
    }
    weir_json_token *tk = &ps->doc->toks[t];
    tk->end = (uint32_t)ps->i;
    tk->next = ps->doc->ntoks;
    tk->count = count;
    ps->depth--;
    return true;
}

static bool parse_value(jparser *ps) {
    skip_ws(ps);
    if (ps->i >= ps->len) return jfail(ps, WEIR__ERR_EOF_VALUE, ps->len);
    uint8_t c = ps->s[ps->i];
    switch (c) {
    case '{': return parse_container(ps, true);
    case '[': return parse_container(ps, false);
    case '"': return parse_string(ps);
    case 't': return parse_literal(ps, "true", WEIR_JSON_TRUE);
    case 'f': return parse_literal(ps, "false", WEIR_JSON_FALSE);
    case 'n': return parse_literal(ps, "null", WEIR_JSON_NULL);
    default: break;
    }
    if (c != '-' && !IS_DIGIT(c)) return jfail(ps, "expected value", ps->i);
    numreader r = {ps->s + ps->i, ps->s + ps->len};
    jnum n;
    const char *err = weir__parse_number(&r, &n);
    if (err != NULL) return jfail(ps, err, (size_t)(r.p - ps->s));
    uint32_t t = tok_new(ps, WEIR_JSON_NUMBER, ps->i);
    if (t == UINT32_MAX) return false;
    ps->i = (size_t)(r.p - ps->s);
    ps->doc->toks[t].end = (uint32_t)ps->i;
    ps->doc->toks[t].flags = n.kind == NUM_F64 ? TOK_FLOAT : 0;
    return true;
}

int weir_json_parse(weir_json *doc, weir_bytes text, weir_error *err) {
    doc->text = text.ptr;
    doc->len = text.len;
    doc->ntoks = 0;
    if (text.len >= UINT32_MAX) return weir_fail(err, "JSON text larger than 4 GiB");
    jparser ps = {doc, text.ptr, text.len, 0, 0, NULL, 0};
    if (parse_value(&ps)) {
        skip_ws(&ps);
        if (ps.i == ps.len) return WEIR_OK;
        jfail(&ps, "trailing characters", ps.i);
    }
    doc->ntoks = 0;
    /* Line and column (1-based, in bytes) as serde_json reports them. */
    size_t line = 1, col = 0;
    for (size_t k = 0; k < ps.at && k < text.len; k++) {
        if (text.ptr[k] == '\n') {
            line++;
            col = 0;
        } else {
            col++;
        }
    }
    if (ps.at < text.len) col++;
    return weir_fail(err, "%s at line %zu column %zu", ps.msg, line, col);
}

void weir_json_free(weir_json *doc) {
    free(doc->toks);
    memset(doc, 0, sizeof *doc);
}

/* =============================================================================================
 * JSON access
 * ============================================================================================= */



weir_json_kind weir_json_kind_of(const weir_json *doc, weir_json_value v) {
    const weir_json_token *t = tok(doc, v);
    return t ? (weir_json_kind)t->kind : WEIR_JSON_NULL;
}

const char *weir_json_kind_name(weir_json_kind kind) {
    switch (kind) {
    case WEIR_JSON_NULL: return "null";
    case WEIR_JSON_FALSE:
    case WEIR_JSON_TRUE: return "a boolean";
    case WEIR_JSON_NUMBER: return "a number";
    case WEIR_JSON_STRING: return "a string";
    case WEIR_JSON_ARRAY: return "an array";
    case WEIR_JSON_OBJECT: return "an object";
    }
    return "a JSON value";
}

uint32_t weir_json_count(const weir_json *doc, weir_json_value v) {
    const weir_json_token *t = tok(doc, v);
    return t && (t->kind == WEIR_JSON_ARRAY || t->kind == WEIR_JSON_OBJECT) ? t->count : 0;
}

weir_bytes weir_json_raw(const weir_json *doc, weir_json_value v) {
    weir_bytes b = {NULL, 0};
    const weir_json_token *t = tok(doc, v);
    if (t == NULL) return b;
    size_t s = t->start, e = t->end;
    if (t->kind == WEIR_JSON_STRING) {
        s--;
        e++;
    }
    b.ptr = doc->text + s;
    b.len = e - s;
    return b;
}

void weir__jstr_init(jstr_iter *it, const weir_json *d, const weir_json_token *t) {
    it->p = d->text + t->start;
    it->end = d->text + t->end;
    it->n = it->k = 0;
}

int weir__jstr_next(jstr_iter *it) {
    if (it->k < it->n) return it->pend[it->k++];
    if (it->p >= it->end) return -1;
    uint8_t c = *it->p++;
    if (c != '\\') return c;
    if (it->p >= it->end) return -1;
    c = *it->p++;
    switch (c) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return c; /* " \ / */
    }
    if (it->end - it->p < 4) return -1;
    uint32_t cp = (uint32_t)hex4(it->p);
    it->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (it->end - it->p < 6) return -1;
        uint32_t lo = (uint32_t)hex4(it->p + 2);
        it->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) {
        it->pend[0] = (uint8_t)cp;
        it->n = 1;
    } else if (cp < 0x800) {
        it->pend[0] = (uint8_t)(0xC0 | cp >> 6);
        it->pend[1] = (uint8_t)(0x80 | (cp & 0x3F));
        it->n = 2;
    } else if (cp < 0x10000) {
        it->pend[0] = (uint8_t)(0xE0 | cp >> 12);
        it->pend[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        it->pend[2] = (uint8_t)(0x80 | (cp & 0x3F));
        it->n = 3;
    } else {
        it->pend[0] = (uint8_t)(0xF0 | cp >> 18);
        it->pend[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        it->pend[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        it->pend[3] = (uint8_t)(0x80 | (cp & 0x3F));
        it->n = 4;
    }
    it->k = 1;
    return it->pend[0];
}

bool weir_json_string_eq(const weir_json *doc, weir_json_value s, const char *name,
                         size_t name_len) {
    const weir_json_token *t = tok(doc, s);
    if (t == NULL || t->kind != WEIR_JSON_STRING) return false;
    if (!(t->flags & TOK_ESCAPED))
        return t->end - t->start == name_len &&
               (name_len == 0 || memcmp(doc->text + t->start, name, name_len) == 0);
    jstr_iter it;
    weir__jstr_init(&it, doc, t);
    for (size_t k = 0; k < name_len; k++)
        if (weir__jstr_next(&it) != (uint8_t)name[k]) return false;
    return weir__jstr_next(&it) < 0;
}

/* True when string tokens a and b decode to the same bytes. */
bool weir__jstr_tok_eq(const weir_json *d, const weir_json_token *a, const weir_json_token *b) {
    if (!(a->flags & TOK_ESCAPED) && !(b->flags & TOK_ESCAPED))
        return a->end - a->start == b->end - b->start &&
               memcmp(d->text + a->start, d->text + b->start, a->end - a->start) == 0;
    jstr_iter x, y;
    weir__jstr_init(&x, d, a);
    weir__jstr_init(&y, d, b);
    for (;;) {
        int cx = weir__jstr_next(&x), cy = weir__jstr_next(&y);
        if (cx != cy) return false;
        if (cx < 0) return true;
    }
}

int weir_json_string(const weir_json *doc, weir_json_value s, weir_buf *out) {
    const weir_json_token *t = tok(doc, s);
    if (t == NULL || t->kind != WEIR_JSON_STRING) return WEIR_ERR;
    if (!(t->flags & TOK_ESCAPED)) return weir_buf_append(out, doc->text + t->start, t->end - t->start);
    jstr_iter it;
    weir__jstr_init(&it, doc, t);
    int c;
    while ((c = weir__jstr_next(&it)) >= 0) weir_buf_push(out, (uint8_t)c);
    return out->failed ? WEIR_ERR : WEIR_OK;
}

bool weir_json_member(const weir_json *doc, weir_json_value obj, uint32_t *it,
                      weir_json_value *key, weir_json_value *value) {
    const weir_json_token *t = tok(doc, obj);
    if (t == NULL || t->kind != WEIR_JSON_OBJECT) return false;
    /* *it is 0 at the start, then the token index of the next key. */
    uint32_t k = *it == 0 ? obj + 1 : *it;
    if (k + 1 >= t->next) return false; /* also refuses an `it` that is not a key */
    *key = k;
    *value = k + 1;
    *it = doc->toks[k + 1].next;
    return true;
}

bool weir_json_element(const weir_json *doc, weir_json_value arr, uint32_t *it,
                       weir_json_value *value) {
    const weir_json_token *t = tok(doc, arr);
    if (t == NULL || t->kind != WEIR_JSON_ARRAY) return false;
    uint32_t k = *it == 0 ? arr + 1 : *it;
    if (k >= t->next) return false;
    *value = k;
    *it = doc->toks[k].next;
    return true;
}

bool weir_json_get(const weir_json *doc, weir_json_value obj, const char *name, size_t name_len,
                   weir_json_value *value) {
    uint32_t it = 0;
    weir_json_value k, v;
    bool found = false;
    while (weir_json_member(doc, obj, &it, &k, &v)) {
        if (weir_json_string_eq(doc, k, name, name_len)) {
            *value = v;
            found = true;
        }
    }
    return found;
}

static bool number_of(const weir_json *doc, weir_json_value v, jnum *n) {
    const weir_json_token *t = tok(doc, v);
    if (t == NULL || t->kind != WEIR_JSON_NUMBER) return false;
    numreader r = {doc->text + t->start, doc->text + t->end};
    return weir__parse_number(&r, n) == NULL;
}

bool weir_json_int64(const weir_json *doc, weir_json_value v, int64_t *out) {
    jnum n;
    if (!number_of(doc, v, &n)) return false;
    if (n.kind == NUM_I64) {
        *out = n.i;
        return true;
    }
    if (n.kind == NUM_U64 && n.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)n.u;
        return true;
    }
    return false;
}

bool weir_json_double(const weir_json *doc, weir_json_value v, double *out) {
    jnum n;
    if (!number_of(doc, v, &n)) return false;
    *out = n.kind == NUM_U64 ? (double)n.u : n.kind == NUM_I64 ? (double)n.i : n.f;
    return true;
}

bool weir_json_bool(const weir_json *doc, weir_json_value v, bool *out) {
    const weir_json_token *t = tok(doc, v);
    if (t == NULL || (t->kind != WEIR_JSON_TRUE && t->kind != WEIR_JSON_FALSE)) return false;
    *out = t->kind == WEIR_JSON_TRUE;
    return true;
}
