/* kit-sum (world `aggregate`): the behavioural kit's per-key count and sum, in C.
 *
 * Config: {"field": "amount"} (default "amount"). Each event's payload must be a JSON object whose
 * `field` is an integer (one that fits 64 bits), or the event is dead-lettered. The accumulator is
 * a fixed-size struct (count, sum) stored as its 16 little-endian bytes; sums wrap on overflow,
 * as in the Rust version. `finish` emits {"key":..,"start":..,"end":..,"count":..,"sum":..} in
 * this order, compact (see plugins/kit/README.md). */
#include "aggregate.h"
#include "weir.h"

typedef struct acc {
    uint64_t count;
    int64_t sum;
} acc;

static weir_buf field;    /* the summed field's name */
static weir_json payload; /* reused for every event */

static int configure(const char *text, size_t len, weir_error *err) {
    weir_buf_free(&field);
    weir_json c = {0};
    weir_error why = {0};
    int rc = WEIR_OK;
    if (weir_json_parse(&c, (weir_bytes){(const uint8_t *)text, len}, &why) != WEIR_OK) {
        rc = weir_fail(err, "kit-sum config: %s", why.msg ? why.msg : "invalid JSON");
    } else if (weir_json_kind_of(&c, WEIR_JSON_ROOT) != WEIR_JSON_OBJECT) {
        rc = weir_fail(err, "kit-sum config: expected an object, got %s",
                       weir_json_kind_name(weir_json_kind_of(&c, WEIR_JSON_ROOT)));
    } else {
        uint32_t it = 0;
        weir_json_value k, v;
        bool has_field = false;
        while (rc == WEIR_OK && weir_json_member(&c, WEIR_JSON_ROOT, &it, &k, &v)) {
            if (!weir_json_string_eq(&c, k, "field", 5)) {
                weir_buf name = {0};
                weir_json_string(&c, k, &name);
                rc = weir_fail(err, "kit-sum config: unknown field `%.*s`, expected `field`",
                               (int)name.len, (const char *)name.ptr);
                weir_buf_free(&name);
            } else if (has_field)
                rc = weir_fail(err, "kit-sum config: duplicate field `field`");
            else if (weir_json_kind_of(&c, v) != WEIR_JSON_STRING)
                rc = weir_fail(err, "kit-sum config: field `field`: expected a string, got %s",
                               weir_json_kind_name(weir_json_kind_of(&c, v)));
            else if (weir_json_string(&c, v, &field) != WEIR_OK)
                rc = weir_fail(err, "kit-sum config: out of memory");
            has_field = true;
        }
        if (rc == WEIR_OK && !has_field && weir_buf_append_str(&field, "amount") != WEIR_OK)
            rc = weir_fail(err, "kit-sum config: out of memory");
    }
    weir_error_free(&why);
    weir_json_free(&c);
    return rc;
}

static int add(weir_buf *buf, const weir_event *e, weir_error *err) {
    weir_error why = {0};
    if (weir_json_parse(&payload, e->payload, &why) != WEIR_OK) {
        weir_fail(err, "payload is not a JSON object: %s", why.msg ? why.msg : "invalid JSON");
        weir_error_free(&why);
        return WEIR_ERR;
    }
    weir_json_kind kind = weir_json_kind_of(&payload, WEIR_JSON_ROOT);
    if (kind != WEIR_JSON_OBJECT)
        return weir_fail(err, "payload is not a JSON object: it is %s", weir_json_kind_name(kind));
    const char *name = (const char *)field.ptr;
    int name_len = (int)field.len;
    weir_json_value v;
    int64_t x;
    if (!weir_json_get(&payload, WEIR_JSON_ROOT, name, field.len, &v))
        return weir_fail(err, "field `%.*s` is missing", name_len, name);
    if (!weir_json_int64(&payload, v, &x)) {
        weir_buf text = {0};
        weir_json_write(&payload, v, &text);
        weir_fail(err, "field `%.*s` is %.*s, not an integer", name_len, name, (int)text.len,
                  text.ptr ? (const char *)text.ptr : "");
        weir_buf_free(&text);
        return WEIR_ERR;
    }
    acc *a = WEIR_ACC(buf, acc);
    a->count += 1;
    a->sum = (int64_t)((uint64_t)a->sum + (uint64_t)x); /* wrapping, as in Rust */
    return WEIR_OK;
}

static int merge(weir_buf *into, const weir_buf *other, weir_error *err) {
    (void)err;
    acc *a = WEIR_ACC(into, acc);
    const acc *b = WEIR_ACC(other, const acc);
    a->count += b->count;
    a->sum = (int64_t)((uint64_t)a->sum + (uint64_t)b->sum);
    return WEIR_OK;
}

static int finish(weir_bytes key, weir_window window, const weir_buf *buf, weir_results *out,
                  weir_error *err) {
    const acc *a = WEIR_ACC(buf, const acc);
    weir_buf *p = weir_result_add(out);
    if (p == NULL) return weir_fail(err, "out of memory");
    weir_buf_append_str(p, "{\"key\":");
    weir_json_write_string(p, key.ptr, key.len); /* not UTF-8: U+FFFD, as Rust's lossy decoding */
    weir_buf_append_str(p, ",\"start\":");
    weir_buf_append_i64(p, window.start);
    weir_buf_append_str(p, ",\"end\":");
    weir_buf_append_i64(p, window.end);
    weir_buf_append_str(p, ",\"count\":");
    weir_buf_append_u64(p, a->count);
    weir_buf_append_str(p, ",\"sum\":");
    weir_buf_append_i64(p, a->sum);
    return weir_buf_push(p, '}');
}

static const weir_aggregate kit_sum = {
    .acc_size = sizeof(acc),
    .state_version = 0,
    .configure = configure,
    .add = add,
    .merge = merge,
    .finish = finish,
};

WEIR_EXPORT_AGGREGATE(kit_sum)
