/* weir_json_write.c — the JSON writer: serde_json's compact output, byte for byte. */
#include "weir_impl.h"

#include <math.h>
#include <stdio.h>

/* =============================================================================================
 * JSON writer (serde_json's compact output)
 * ============================================================================================= */

/* serde_json's escape of one byte of a valid UTF-8 string; 0 when written as is. */
static inline uint8_t escape_of(uint8_t c) {
    static const uint8_t short_escape[32] = {
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
        'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    };
    if (c < 0x20) return short_escape[c];
    if (c == '"' || c == '\\') return c;
    return 0;
}

static void write_escaped_byte(weir_buf *out, uint8_t c, uint8_t esc) {
    static const char hex[] = "0123456789abcdef";
    if (esc == 'u') {
        uint8_t u[6] = {'\\', 'u', '0', '0', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 0xF]};
        weir_buf_append(out, u, 6);
    } else {
        uint8_t s[2] = {'\\', esc};
        weir_buf_append(out, s, 2);
    }
}

int weir_json_write_string(weir_buf *out, const void *s, size_t len) {
    if (len == 0) return weir_buf_append(out, "\"\"", 2);
    const uint8_t *p = (const uint8_t *)s, *end = p + len, *run = p;
    weir_buf_reserve(out, len + 2);
    weir_buf_push(out, '"');
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            uint8_t esc = escape_of(c);
            if (esc == 0) {
                p++;
                continue;
            }
            weir_buf_append(out, run, (size_t)(p - run));
            write_escaped_byte(out, c, esc);
            run = ++p;
            continue;
        }
        size_t bad, n = weir__utf8_seq(p, end, &bad);
        if (n > 0) {
            p += n;
            continue;
        }
        weir_buf_append(out, run, (size_t)(p - run));
        weir_buf_append(out, "\xEF\xBF\xBD", 3);
        p += bad;
        run = p;
    }
    weir_buf_append(out, run, (size_t)(p - run));
    return weir_buf_push(out, '"');
}

int weir_json_write_double(weir_buf *out, double v) {
    if (isnan(v) || isinf(v)) return WEIR_ERR;
    if (v == 0) return weir_buf_append_str(out, signbit(v) ? "-0.0" : "0.0");
    if (v < 0) weir_buf_push(out, '-');
    double a = fabs(v);
    /* The shortest decimal that reads back as `a` (printf and strtod are exact in wasi-libc):
     * at each precision the nearest decimal, else its neighbour one unit away — which is what
     * round-trips when `a` is a power of two, whose rounding interval is narrower below. */
    char digits[24];
    int nd = 0, exp = 0;
    for (int prec = 1; prec <= 17 && nd == 0; prec++) {
        char sci[40], alt[48];
        snprintf(sci, sizeof sci, "%.*e", prec - 1, a);
        const char *e = strchr(sci, 'e');
        if (e == NULL) return WEIR_ERR;
        int sci_exp = atoi(e + 1);
        uint64_t m = 0;
        for (const char *q = sci; q < e; q++)
            if (*q >= '0' && *q <= '9') m = m * 10 + (uint64_t)(*q - '0');
        for (int k = 0; k < 3 && nd == 0; k++) {
            uint64_t cand = k == 0 ? m : k == 1 ? m + 1 : m - 1;
            if (cand == 0) continue;
            snprintf(alt, sizeof alt, "%llue%d", (unsigned long long)cand, sci_exp - (prec - 1));
            if (strtod(alt, NULL) != a) continue;
            /* alt is "<digits>e<scale>": the scientific exponent counts the digits. */
            const char *ae = strchr(alt, 'e');
            nd = (int)(ae - alt);
            memcpy(digits, alt, (size_t)nd);
            exp = atoi(ae + 1) + nd - 1;
        }
    }
    if (nd == 0) return WEIR_ERR; /* unreachable: 17 digits always round-trip */
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    /* zmij's layout (serde_json's float writer): fixed notation for exponents -5..=15. */
    if (exp >= -5 && exp <= 15) {
        if (nd - 1 <= exp) { /* 1234e7 -> 12340000000.0 */
            weir_buf_append(out, digits, (size_t)nd);
            for (int k = nd; k <= exp; k++) weir_buf_push(out, '0');
            return weir_buf_append_str(out, ".0");
        }
        if (exp >= 0) { /* 1234e-2 -> 12.34 */
            weir_buf_append(out, digits, (size_t)exp + 1);
            weir_buf_push(out, '.');
            return weir_buf_append(out, digits + exp + 1, (size_t)(nd - exp - 1));
        }
        weir_buf_append_str(out, "0."); /* 1234e-6 -> 0.001234 */
        for (int k = 0; k < -exp - 1; k++) weir_buf_push(out, '0');
        return weir_buf_append(out, digits, (size_t)nd);
    }
    weir_buf_push(out, (uint8_t)digits[0]); /* 1234e30 -> 1.234e+33 */
    if (nd > 1) {
        weir_buf_push(out, '.');
        weir_buf_append(out, digits + 1, (size_t)(nd - 1));
    }
    return weir_buf_printf(out, "e%c%d", exp >= 0 ? '+' : '-', exp >= 0 ? exp : -exp);
}

static int write_value(const weir_json *d, weir_json_value v, weir_buf *out);

static int write_string_tok(const weir_json *d, const weir_json_token *t, weir_buf *out) {
    if (!(t->flags & TOK_ESCAPED)) {
        /* No escape: the content is valid UTF-8 without quotes, backslashes or control
         * characters, which serde_json writes unchanged. */
        weir_buf_reserve(out, t->end - t->start + 2);
        weir_buf_push(out, '"');
        weir_buf_append(out, d->text + t->start, t->end - t->start);
        return weir_buf_push(out, '"');
    }
    jstr_iter it;
    weir__jstr_init(&it, d, t);
    weir_buf_push(out, '"');
    int c;
    while ((c = weir__jstr_next(&it)) >= 0) {
        uint8_t esc = escape_of((uint8_t)c);
        if (esc == 0)
            weir_buf_push(out, (uint8_t)c);
        else
            write_escaped_byte(out, (uint8_t)c, esc);
    }
    return weir_buf_push(out, '"');
}

/* For duplicate keys serde_json (with `preserve_order`) keeps one member at the position of the
 * first occurrence with the value of the last: win[i] is the value token to write for member i,
 * or UINT32_MAX to skip it. */
typedef struct member_hash {
    uint64_t hash;
    uint32_t index;
} member_hash;

static int member_hash_cmp(const void *x, const void *y) {
    const member_hash *a = (const member_hash *)x, *b = (const member_hash *)y;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int dedupe_members(const weir_json *d, const uint32_t *keys, uint32_t n, uint32_t *win) {
    for (uint32_t i = 0; i < n; i++) win[i] = keys[i] + 1;
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++) {
            for (uint32_t j = 0; j < i; j++) {
                if (win[j] != UINT32_MAX && weir__jstr_tok_eq(d, &d->toks[keys[i]], &d->toks[keys[j]])) {
                    win[j] = keys[i] + 1;
                    win[i] = UINT32_MAX;
                    break;
                }
            }
        }
        return WEIR_OK;
    }
    member_hash *h = (member_hash *)malloc((size_t)n * sizeof *h);
    if (h == NULL) return WEIR_ERR;
    for (uint32_t i = 0; i < n; i++) {
        jstr_iter it;
        weir__jstr_init(&it, d, &d->toks[keys[i]]);
        uint64_t x = 0xcbf29ce484222325u; /* FNV-1a */
        int c;
        while ((c = weir__jstr_next(&it)) >= 0) x = (x ^ (uint8_t)c) * 0x100000001b3u;
        h[i].hash = x;
        h[i].index = i;
    }
    qsort(h, n, sizeof *h, member_hash_cmp);
    for (uint32_t g = 0; g < n;) {
        uint32_t e = g + 1;
        while (e < n && h[e].hash == h[g].hash) e++;
        /* Within a run of equal hashes (in member order), merge equal keys into the first. */
        for (uint32_t i = g + 1; i < e; i++) {
            for (uint32_t j = g; j < i; j++) {
                uint32_t mi = h[i].index, mj = h[j].index;
                if (win[mj] != UINT32_MAX && weir__jstr_tok_eq(d, &d->toks[keys[mi]], &d->toks[keys[mj]])) {
                    win[mj] = keys[mi] + 1;
                    win[mi] = UINT32_MAX;
                    break;
                }
            }
        }
        g = e;
    }
    free(h);
    return WEIR_OK;
}

static int write_object(const weir_json *d, weir_json_value o, weir_buf *out) {
    uint32_t n = d->toks[o].count;
    uint32_t small[32];
    uint32_t *keys = small, *win = small + 16;
    if (n > 16) {
        keys = (uint32_t *)malloc((size_t)n * 2 * sizeof *keys);
        if (keys == NULL) {
            out->failed = true;
            return WEIR_ERR;
        }
        win = keys + n;
    }
    uint32_t it = 0, i = 0;
    weir_json_value k, v;
    while (i < n && weir_json_member(d, o, &it, &k, &v)) keys[i++] = k;
    int rc = dedupe_members(d, keys, n, win);
    if (rc == WEIR_OK) {
        weir_buf_push(out, '{');
        bool first = true;
        for (i = 0; i < n; i++) {
            if (win[i] == UINT32_MAX) continue;
            if (!first) weir_buf_push(out, ',');
            first = false;
            write_string_tok(d, &d->toks[keys[i]], out);
            weir_buf_push(out, ':');
            if (write_value(d, win[i], out) != WEIR_OK) break;
        }
        rc = weir_buf_push(out, '}');
    } else {
        out->failed = true;
    }
    if (keys != small) free(keys);
    return rc;
}

static int write_value(const weir_json *d, weir_json_value v, weir_buf *out) {
    const weir_json_token *t = tok(d, v);
    if (t == NULL) return WEIR_ERR;
    switch ((weir_json_kind)t->kind) {
    case WEIR_JSON_NULL: return weir_buf_append_str(out, "null");
    case WEIR_JSON_TRUE: return weir_buf_append_str(out, "true");
    case WEIR_JSON_FALSE: return weir_buf_append_str(out, "false");
    case WEIR_JSON_STRING: return write_string_tok(d, t, out);
    case WEIR_JSON_NUMBER:
        if (t->flags & TOK_FLOAT) {
            double f;
            if (!weir_json_double(d, v, &f)) return WEIR_ERR;
            return weir_json_write_double(out, f);
        }
        /* Integers that fit 64 bits: the text is already serde_json's. */
        return weir_buf_append(out, d->text + t->start, t->end - t->start);
    case WEIR_JSON_ARRAY: {
        weir_buf_push(out, '[');
        uint32_t it = 0;
        weir_json_value e;
        bool first = true;
        while (weir_json_element(d, v, &it, &e)) {
            if (!first) weir_buf_push(out, ',');
            first = false;
            if (write_value(d, e, out) != WEIR_OK) return WEIR_ERR;
        }
        return weir_buf_push(out, ']');
    }
    case WEIR_JSON_OBJECT: return write_object(d, v, out);
    }
    return WEIR_ERR;
}

int weir_json_write(const weir_json *doc, weir_json_value v, weir_buf *out) {
    return write_value(doc, v, out);
}
