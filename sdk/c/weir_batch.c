/* weir_batch.c — packed batches (checked views, the builder), the output of a callback and the
 * per-event loop the transform and process glue call; `configure`. */
#include "weir_impl.h"

#include <limits.h>
#include <stdio.h>

/* =============================================================================================
 * Headers
 * ============================================================================================= */

weir_header_iter weir_headers(const weir_event *e) {
    weir_header_iter it = {e->headers, false};
    return it;
}

static bool header_take(weir_header_iter *it, weir_bytes *out) {
    if (it->rest.len < 4) {
        it->malformed = it->malformed || it->rest.len != 0;
        it->rest.len = 0;
        return false;
    }
    uint32_t n = le32(it->rest.ptr);
    if (it->rest.len - 4 < n) {
        it->malformed = true;
        it->rest.len = 0;
        return false;
    }
    out->ptr = it->rest.ptr + 4;
    out->len = n;
    it->rest.ptr += 4 + (size_t)n;
    it->rest.len -= 4 + (size_t)n;
    return true;
}

bool weir_header_next(weir_header_iter *it, weir_bytes *name, weir_bytes *value) {
    if (!header_take(it, name)) return false;
    if (!header_take(it, value)) {
        it->malformed = true;
        return false;
    }
    return true;
}

bool weir_event_header(const weir_event *e, const char *name, weir_bytes *value) {
    weir_header_iter it = weir_headers(e);
    weir_bytes n, v;
    while (weir_header_next(&it, &n, &v)) {
        if (weir_bytes_eq(n, name)) {
            *value = v;
            return true;
        }
    }
    return false;
}

int weir_headers_push(weir_buf *headers, weir_bytes name, weir_bytes value) {
    if (name.len > UINT32_MAX || value.len > UINT32_MAX) {
        headers->failed = true;
        return WEIR_ERR;
    }
    buf_put_u32(headers, (uint32_t)name.len);
    weir_buf_append_bytes(headers, name);
    buf_put_u32(headers, (uint32_t)value.len);
    return weir_buf_append_bytes(headers, value);
}

/* =============================================================================================
 * Packed batches
 * ============================================================================================= */

static int check_ends(const char *name, weir_bytes ends, size_t data_len, uint32_t n,
                      weir_error *err) {
    if (ends.len != (size_t)n * 4)
        return weir_fail(err, "malformed packed batch: column `%s` has %zu bytes, expected %zu "
                              "for %u events", name, ends.len, (size_t)n * 4, n);
    uint32_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t end = le32(ends.ptr + 4 * (size_t)i);
        if (end < prev)
            return weir_fail(err, "malformed packed batch: column `%s`: end offset of event %u "
                                  "(%u) is before the previous one (%u)", name, i, end, prev);
        prev = end;
    }
    if (prev != data_len)
        return weir_fail(err, "malformed packed batch: column `%s`: last end offset is %u but "
                              "the data holds %zu bytes", name, prev, data_len);
    return WEIR_OK;
}

int weir_batch_open(weir_batch *b, const weir_columns *cols, weir_error *err) {
    if (cols->times.len % 8 != 0 || cols->times.len / 8 > UINT32_MAX)
        return weir_fail(err, "malformed packed batch: column `times` has %zu bytes, not a "
                              "multiple of 8", cols->times.len);
    uint32_t n = (uint32_t)(cols->times.len / 8);
    if (check_ends("payload-ends", cols->payload_ends, cols->payloads.len, n, err) ||
        check_ends("key-ends", cols->key_ends, cols->keys.len, n, err) ||
        check_ends("header-ends", cols->header_ends, cols->headers.len, n, err))
        return WEIR_ERR;
    if (cols->origins.len != (size_t)n * 4)
        return weir_fail(err, "malformed packed batch: column `origins` has %zu bytes, expected "
                              "%zu for %u events", cols->origins.len, (size_t)n * 4, n);
    b->cols = *cols;
    b->len = n;
    return WEIR_OK;
}

weir_event weir_batch_get(const weir_batch *b, uint32_t i) {
    weir_event e;
    memset(&e, 0, sizeof e);
    if (i >= b->len) return e;
    const weir_columns *c = &b->cols;
    e.key = column_item(c->keys, c->key_ends, i);
    e.time = le64(c->times.ptr + 8 * (size_t)i);
    e.payload = column_item(c->payloads, c->payload_ends, i);
    e.headers = column_item(c->headers, c->header_ends, i);
    e.index = i;
    return e;
}

/* =============================================================================================
 * Batch builder
 * ============================================================================================= */

#define BUILDER_COLUMNS(X, b)                                                                      \
    X((b)->payloads) X((b)->payload_ends) X((b)->keys) X((b)->key_ends) X((b)->times)              \
        X((b)->headers) X((b)->header_ends) X((b)->origins)

bool weir_builder_failed(const weir_builder *b) {
#define FAILED(col) || (col).failed
    return false BUILDER_COLUMNS(FAILED, b);
#undef FAILED
}

void weir_builder_free(weir_builder *b) {
#define FREE(col) weir_buf_free(&(col));
    BUILDER_COLUMNS(FREE, b)
#undef FREE
}

uint32_t weir_builder_len(const weir_builder *b) { return (uint32_t)(b->times.len / 8); }

int weir_builder_finish_event(weir_builder *b, weir_bytes key, int64_t time, weir_bytes headers,
                              uint32_t origin) {
    /* Offsets are u32: a column beyond 4 GiB cannot be described (nor exist in wasm32). */
    if (b->payloads.len > UINT32_MAX || key.len > UINT32_MAX - b->keys.len ||
        headers.len > UINT32_MAX - b->headers.len) {
        b->payloads.failed = true;
        return WEIR_ERR;
    }
    buf_put_u32(&b->payload_ends, (uint32_t)b->payloads.len);
    if (key.len > 0) weir_buf_append_bytes(&b->keys, key);
    buf_put_u32(&b->key_ends, (uint32_t)b->keys.len);
    buf_put_i64(&b->times, time);
    if (headers.len > 0) weir_buf_append_bytes(&b->headers, headers);
    buf_put_u32(&b->header_ends, (uint32_t)b->headers.len);
    buf_put_u32(&b->origins, origin);
    return weir_builder_failed(b) ? WEIR_ERR : WEIR_OK;
}

int weir_builder_push(weir_builder *b, weir_bytes key, int64_t time, weir_bytes headers,
                      weir_bytes payload, uint32_t origin) {
    weir_buf_append_bytes(&b->payloads, payload);
    return weir_builder_finish_event(b, key, time, headers, origin);
}

/* Appends the data of events lo..hi (one copy) and their end offsets rebased onto `data`. */
static void append_run(weir_buf *data, weir_buf *ends, weir_bytes src, weir_bytes src_ends,
                       uint32_t lo, uint32_t hi) {
    uint32_t start = lo == 0 ? 0 : le32(src_ends.ptr + 4 * ((size_t)lo - 1));
    uint32_t end = le32(src_ends.ptr + 4 * ((size_t)hi - 1));
    if (data->len + (end - start) > UINT32_MAX) {
        data->failed = true;
        return;
    }
    uint32_t delta = (uint32_t)data->len - start; /* wrapping, as the Rust SDK */
    if (end > start) weir_buf_append(data, src.ptr + start, end - start);
    if (weir_buf_reserve(ends, 4 * (size_t)(hi - lo)) != WEIR_OK) return;
    for (uint32_t i = lo; i < hi; i++) buf_put_u32(ends, le32(src_ends.ptr + 4 * (size_t)i) + delta);
}

int weir_builder_extend(weir_builder *b, const weir_batch *in, uint32_t lo, uint32_t hi) {
    if (hi > in->len) hi = in->len;
    if (lo >= hi) return weir_builder_failed(b) ? WEIR_ERR : WEIR_OK;
    const weir_columns *c = &in->cols;
    append_run(&b->payloads, &b->payload_ends, c->payloads, c->payload_ends, lo, hi);
    append_run(&b->keys, &b->key_ends, c->keys, c->key_ends, lo, hi);
    append_run(&b->headers, &b->header_ends, c->headers, c->header_ends, lo, hi);
    weir_buf_append(&b->times, c->times.ptr + 8 * (size_t)lo, 8 * (size_t)(hi - lo));
    if (weir_buf_reserve(&b->origins, 4 * (size_t)(hi - lo)) == WEIR_OK)
        for (uint32_t o = lo; o < hi; o++) buf_put_u32(&b->origins, o);
    return weir_builder_failed(b) ? WEIR_ERR : WEIR_OK;
}

/* =============================================================================================
 * Output and the per-event loop (transform, process)
 * ============================================================================================= */

struct weir_output {
    weir_builder *b;
    const weir_batch *in; /* NULL for a timer */
    const weir_event *event;
    uint32_t lo, hi;      /* input events forwarded and not yet copied */
    bool open;            /* a payload begun with weir_emit_begin */
    size_t mark;          /* payload column length when it was begun */
};

static void run_flush(weir_output *o) {
    if (o->hi > o->lo) weir_builder_extend(o->b, o->in, o->lo, o->hi);
    o->lo = o->hi;
}

void weir_emit_abort(weir_output *out) {
    if (out == NULL || !out->open) return;
    weir_buf_truncate(&out->b->payloads, out->mark);
    out->open = false;
}

int weir_forward(weir_output *out) {
    if (out == NULL || out->in == NULL) return WEIR_ERR; /* a timer has no input event */
    weir_emit_abort(out);
    uint32_t i = out->event->index;
    if (out->hi == i && out->hi > out->lo) {
        out->hi++;
    } else {
        run_flush(out);
        out->lo = i;
        out->hi = i + 1;
    }
    return weir_builder_failed(out->b) ? WEIR_ERR : WEIR_OK;
}

weir_buf *weir_emit_begin(weir_output *out) {
    if (out == NULL) return NULL;
    weir_emit_abort(out);
    run_flush(out);
    out->open = true;
    out->mark = out->b->payloads.len;
    return &out->b->payloads;
}

int weir_emit_commit_as(weir_output *out, weir_bytes key, int64_t time, weir_bytes headers) {
    if (out == NULL || !out->open) return WEIR_ERR;
    out->open = false;
    return weir_builder_finish_event(out->b, key, time, headers, out->event->index);
}

int weir_emit_commit(weir_output *out) {
    if (out == NULL) return WEIR_ERR;
    const weir_event *e = out->event;
    return weir_emit_commit_as(out, e->key, e->time, e->headers);
}

int weir_emit(weir_output *out, weir_bytes key, int64_t time, weir_bytes headers,
              weir_bytes payload) {
    weir_buf *p = weir_emit_begin(out);
    if (p == NULL) return WEIR_ERR;
    weir_buf_append_bytes(p, payload);
    return weir_emit_commit_as(out, key, time, headers);
}

int weir_emit_payload(weir_output *out, const void *payload, size_t len) {
    weir_buf *p = weir_emit_begin(out);
    if (p == NULL) return WEIR_ERR;
    weir_buf_append(p, payload, len);
    return weir_emit_commit(out);
}

const weir_event *weir_output_input(const weir_output *out) { return out ? out->event : NULL; }

/* Set by a successful `configure`; every other entry point refuses to run before it. */
bool weir__configured;
const char WEIR__NOT_CONFIGURED[] = "called before a successful `configure`";
static const char OUT_OF_MEMORY[] = "out of memory while building the output";

bool weir__configure(weir_configure_fn fn, const uint8_t *config, size_t len, weir__list *err) {
    weir_error e = {0};
    int rc = WEIR_OK;
    if (fn != NULL) {
        char *text = (char *)malloc(len + 1);
        if (text == NULL) {
            rc = weir_fail(&e, "out of memory reading the config");
        } else {
            if (len > 0) memcpy(text, config, len);
            text[len] = 0;
            rc = fn(text, len, &e);
            free(text);
        }
    }
    weir__configured = rc == WEIR_OK;
    if (!weir__configured) *err = weir__message_list(&e, "invalid config");
    weir_error_free(&e);
    return weir__configured;
}

static void batch_out_from(weir__batch_out *o, weir_builder *b) {
    o->payloads = weir__list_from_buf(&b->payloads);
    o->payload_ends = weir__list_from_buf(&b->payload_ends);
    o->keys = weir__list_from_buf(&b->keys);
    o->key_ends = weir__list_from_buf(&b->key_ends);
    o->times = weir__list_from_buf(&b->times);
    o->headers = weir__list_from_buf(&b->headers);
    o->header_ends = weir__list_from_buf(&b->header_ends);
    o->origins = weir__list_from_buf(&b->origins);
}

bool weir__events(const weir_columns *cols, const weir_event *timer, weir_event_fn fn,
                  weir__batch_out *out, uint32_t *err_index, weir__list *err) {
    weir_error e = {0};
    weir_builder b;
    memset(&b, 0, sizeof b);
    weir_batch in;
    memset(&in, 0, sizeof in);
    weir_output o;
    memset(&o, 0, sizeof o);
    o.b = &b;
    *err_index = 0;
    if (!weir__configured) {
        weir_fail(&e, "%s", WEIR__NOT_CONFIGURED);
        goto fail;
    }
    if (timer != NULL) {
        o.event = timer;
        if (fn != NULL && fn(timer, &o, &e) != WEIR_OK) goto fail;
        weir_emit_abort(&o);
        if (weir_builder_failed(&b)) {
            weir_fail(&e, "%s", OUT_OF_MEMORY);
            goto fail;
        }
    } else {
        if (weir_batch_open(&in, cols, &e) != WEIR_OK) goto fail;
        o.in = &in;
        /* Room for an output about the size of the input: a filter or a map never grows. */
        weir_buf_reserve(&b.payloads, in.cols.payloads.len);
        weir_buf_reserve(&b.payload_ends, 4 * (size_t)in.len);
        weir_buf_reserve(&b.keys, in.cols.keys.len);
        weir_buf_reserve(&b.key_ends, 4 * (size_t)in.len);
        weir_buf_reserve(&b.times, 8 * (size_t)in.len);
        weir_buf_reserve(&b.headers, in.cols.headers.len);
        weir_buf_reserve(&b.header_ends, 4 * (size_t)in.len);
        weir_buf_reserve(&b.origins, 4 * (size_t)in.len);
        if (fn == NULL) {
            weir_builder_extend(&b, &in, 0, in.len);
        } else {
            for (uint32_t i = 0; i < in.len; i++) {
                weir_event ev = weir_batch_get(&in, i);
                o.event = &ev;
                *err_index = i;
                if (fn(&ev, &o, &e) != WEIR_OK) goto fail;
                weir_emit_abort(&o);
                if (weir_builder_failed(&b)) {
                    weir_fail(&e, "%s", OUT_OF_MEMORY);
                    goto fail;
                }
            }
            o.event = NULL;
            run_flush(&o);
        }
        if (weir_builder_failed(&b)) {
            weir_fail(&e, "%s", OUT_OF_MEMORY);
            goto fail;
        }
    }
    batch_out_from(out, &b);
    return true;
fail:
    *err = weir__message_list(&e, "event failed (no message given)");
    weir_builder_free(&b);
    return false;
}
