/* kit-filter (world `transform`): the behavioural kit's filter + projection, in C.
 *
 * Config: {"field": "amount", "min": 10, "keep": ["user", "amount"]} (defaults "amount", 0, [] =
 * every field). An event whose payload is not a JSON object fails (dead letter); one whose `field`
 * is missing, not a number, or below `min` is dropped; any other is re-emitted with the same key,
 * time and headers and a compact payload of the `keep` fields present, in `keep`'s order (every
 * field, in input order, when `keep` is empty). See plugins/kit/README.md: the output must be
 * byte-identical to the other languages' implementations, which weir's JSON writer guarantees
 * (it writes what serde_json writes). */
#include "transform.h"
#include "weir.h"

#include <stdlib.h>
#include <string.h>

/* One `keep` entry: its name and the `"name":` text written before its value. */
typedef struct keep_field {
    weir_buf name;
    weir_buf prefix;
} keep_field;

static weir_buf field;       /* the tested field's name */
static double min_value;
static keep_field *keep;     /* distinct names, in first-occurrence order */
static size_t keep_len;
static weir_json payload;    /* reused for every event: no per-event allocation once warm */

static void settings_free(void) {
    for (size_t i = 0; i < keep_len; i++) {
        weir_buf_free(&keep[i].name);
        weir_buf_free(&keep[i].prefix);
    }
    free(keep);
    keep = NULL;
    keep_len = 0;
    weir_buf_free(&field);
    min_value = 0;
}

/* Reads `keep`: a list of strings, duplicates merged (as a JSON object keeps one per name). */
static int read_keep(const weir_json *c, weir_json_value list, weir_error *err) {
    if (weir_json_kind_of(c, list) != WEIR_JSON_ARRAY)
        return weir_fail(err, "kit-filter config: field `keep`: expected a list of strings, got %s",
                         weir_json_kind_name(weir_json_kind_of(c, list)));
    size_t n = weir_json_count(c, list);
    keep = n ? (keep_field *)calloc(n, sizeof *keep) : NULL;
    if (n && keep == NULL) return weir_fail(err, "kit-filter config: out of memory");
    uint32_t it = 0;
    weir_json_value v;
    while (weir_json_element(c, list, &it, &v)) {
        if (weir_json_kind_of(c, v) != WEIR_JSON_STRING)
            return weir_fail(err, "kit-filter config: field `keep`: expected a list of strings, "
                                  "found %s", weir_json_kind_name(weir_json_kind_of(c, v)));
        keep_field *k = &keep[keep_len];
        weir_json_string(c, v, &k->name);
        bool seen = false;
        for (size_t i = 0; i < keep_len; i++)
            seen = seen || (keep[i].name.len == k->name.len &&
                            memcmp(keep[i].name.ptr, k->name.ptr, k->name.len) == 0);
        if (seen) {
            weir_buf_free(&k->name);
            continue;
        }
        weir_json_write_string(&k->prefix, k->name.ptr, k->name.len);
        weir_buf_push(&k->prefix, ':');
        keep_len++;
        if (k->name.failed || k->prefix.failed)
            return weir_fail(err, "kit-filter config: out of memory");
    }
    return WEIR_OK;
}

static int configure(const char *text, size_t len, weir_error *err) {
    settings_free();
    weir_json c = {0};
    weir_error why = {0};
    int rc = WEIR_OK;
    bool has_field = false, has_min = false, has_keep = false;
    if (weir_json_parse(&c, (weir_bytes){(const uint8_t *)text, len}, &why) != WEIR_OK) {
        rc = weir_fail(err, "kit-filter config: %s", why.msg ? why.msg : "invalid JSON");
        goto done;
    }
    if (weir_json_kind_of(&c, WEIR_JSON_ROOT) != WEIR_JSON_OBJECT) {
        rc = weir_fail(err, "kit-filter config: expected an object, got %s",
                       weir_json_kind_name(weir_json_kind_of(&c, WEIR_JSON_ROOT)));
        goto done;
    }
    uint32_t it = 0;
    weir_json_value k, v;
    while (rc == WEIR_OK && weir_json_member(&c, WEIR_JSON_ROOT, &it, &k, &v)) {
        bool *seen = weir_json_string_eq(&c, k, "field", 5) ? &has_field
                   : weir_json_string_eq(&c, k, "min", 3)   ? &has_min
                   : weir_json_string_eq(&c, k, "keep", 4)  ? &has_keep
                                                            : NULL;
        if (seen == NULL) {
            weir_buf name = {0};
            weir_json_string(&c, k, &name);
            rc = weir_fail(err, "kit-filter config: unknown field `%.*s`, expected one of "
                                "`field`, `min`, `keep`", (int)name.len, (const char *)name.ptr);
            weir_buf_free(&name);
        } else if (*seen) {
            weir_bytes name = weir_json_raw(&c, k);
            rc = weir_fail(err, "kit-filter config: duplicate field %.*s", (int)name.len,
                           (const char *)name.ptr);
        } else if (seen == &has_field) {
            if (weir_json_kind_of(&c, v) != WEIR_JSON_STRING)
                rc = weir_fail(err, "kit-filter config: field `field`: expected a string, got %s",
                               weir_json_kind_name(weir_json_kind_of(&c, v)));
            else if (weir_json_string(&c, v, &field) != WEIR_OK)
                rc = weir_fail(err, "kit-filter config: out of memory");
        } else if (seen == &has_min) {
            if (!weir_json_double(&c, v, &min_value))
                rc = weir_fail(err, "kit-filter config: field `min`: expected a number, got %s",
                               weir_json_kind_name(weir_json_kind_of(&c, v)));
        } else {
            rc = read_keep(&c, v, err);
        }
        if (seen != NULL) *seen = true;
    }
    if (rc == WEIR_OK && !has_field && weir_buf_append_str(&field, "amount") != WEIR_OK)
        rc = weir_fail(err, "kit-filter config: out of memory");
done:
    weir_error_free(&why);
    weir_json_free(&c);
    if (rc != WEIR_OK) settings_free();
    return rc;
}

static int on_event(const weir_event *e, weir_output *out, weir_error *err) {
    weir_error why = {0};
    if (weir_json_parse(&payload, e->payload, &why) != WEIR_OK) {
        weir_fail(err, "payload is not a JSON object: %s", why.msg ? why.msg : "invalid JSON");
        weir_error_free(&why);
        return WEIR_ERR;
    }
    weir_json_kind kind = weir_json_kind_of(&payload, WEIR_JSON_ROOT);
    if (kind != WEIR_JSON_OBJECT)
        return weir_fail(err, "payload is not a JSON object: it is %s", weir_json_kind_name(kind));
    weir_json_value v;
    double x;
    if (!weir_json_get(&payload, WEIR_JSON_ROOT, (const char *)field.ptr, field.len, &v) ||
        !weir_json_double(&payload, v, &x) || x < min_value)
        return WEIR_OK; /* dropped */
    weir_buf *p = weir_emit_begin(out);
    if (keep_len == 0) {
        weir_json_write(&payload, WEIR_JSON_ROOT, p);
    } else {
        weir_buf_push(p, '{');
        bool first = true;
        for (size_t i = 0; i < keep_len; i++) {
            if (!weir_json_get(&payload, WEIR_JSON_ROOT, (const char *)keep[i].name.ptr,
                               keep[i].name.len, &v))
                continue;
            if (!first) weir_buf_push(p, ',');
            first = false;
            weir_buf_append(p, keep[i].prefix.ptr, keep[i].prefix.len);
            weir_json_write(&payload, v, p);
        }
        weir_buf_push(p, '}');
    }
    if (weir_emit_commit(out) != WEIR_OK) return weir_fail(err, "out of memory writing the output");
    return WEIR_OK;
}

WEIR_EXPORT_TRANSFORM(configure, on_event)
