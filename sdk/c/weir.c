/* weir.c — the world-independent part of the C SDK (see weir.h): byte buffers, checked views of
 * packed batches, the output builder, the per-event and aggregate loops the world glue calls, and
 * the strict JSON reader/writer.
 *
 * `weir plugin build` compiles this file into every C plugin. It includes no generated header:
 * it works on plain pointer/length views, and the macros of weir.h convert. Nothing here trusts
 * its input: batches are checked once when opened, JSON is validated before it is read, and every
 * allocation is checked (a failed one becomes an error, never a crash). */
#include "weir.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* =============================================================================================
 * Little-endian integers
 * ============================================================================================= */

static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return (int64_t)v;
}

/* =============================================================================================
 * Byte views and buffers
 * ============================================================================================= */

weir_bytes weir_cstr(const char *s) {
    weir_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

bool weir_bytes_eq(weir_bytes a, const char *s) {
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

int weir_buf_reserve(weir_buf *b, size_t additional) {
    if (b->failed) return WEIR_ERR;
    if (b->cap - b->len >= additional) return WEIR_OK;
    if (additional > SIZE_MAX - b->len) {
        b->failed = true;
        return WEIR_ERR;
    }
    size_t need = b->len + additional;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = (uint8_t *)realloc(b->ptr, cap);
    if (p == NULL) {
        b->failed = true;
        return WEIR_ERR;
    }
    b->ptr = p;
    b->cap = cap;
    return WEIR_OK;
}

int weir_buf_append(weir_buf *b, const void *data, size_t len) {
    if (len == 0) return b->failed ? WEIR_ERR : WEIR_OK;
    if (weir_buf_reserve(b, len) != WEIR_OK) return WEIR_ERR;
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
    return WEIR_OK;
}

int weir_buf_append_bytes(weir_buf *b, weir_bytes data) {
    return weir_buf_append(b, data.ptr, data.len);
}

int weir_buf_append_str(weir_buf *b, const char *s) { return weir_buf_append(b, s, strlen(s)); }

int weir_buf_push(weir_buf *b, uint8_t byte) {
    if (b->len < b->cap && !b->failed) {
        b->ptr[b->len++] = byte;
        return WEIR_OK;
    }
    return weir_buf_append(b, &byte, 1);
}

int weir_buf_append_u64(weir_buf *b, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return weir_buf_append(b, tmp + sizeof tmp - n, n);
}

int weir_buf_append_i64(weir_buf *b, int64_t v) {
    if (v >= 0) return weir_buf_append_u64(b, (uint64_t)v);
    weir_buf_push(b, '-');
    return weir_buf_append_u64(b, 0 - (uint64_t)v);
}

int weir_buf_vprintf(weir_buf *b, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    int rc = WEIR_ERR;
    if (n >= 0 && weir_buf_reserve(b, (size_t)n + 1) == WEIR_OK) {
        vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
        rc = WEIR_OK;
    } else if (n < 0) {
        b->failed = true;
    }
    va_end(again);
    return rc;
}

int weir_buf_printf(weir_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = weir_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void weir_buf_truncate(weir_buf *b, size_t len) {
    if (len < b->len) b->len = len;
}

void weir_buf_clear(weir_buf *b) {
    b->len = 0;
    b->failed = false;
}

void weir_buf_free(weir_buf *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

weir_bytes weir_buf_view(const weir_buf *b) {
    weir_bytes v = {b->ptr, b->len};
    return v;
}

/* Appends a u32/i64 little-endian; the fast path is the per-event hot path of the builder. */
static inline void buf_put_u32(weir_buf *b, uint32_t v) {
    if (b->cap - b->len < 4 && weir_buf_reserve(b, 4) != WEIR_OK) return;
    if (b->failed) return;
    uint8_t *p = b->ptr + b->len;
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    b->len += 4;
}

static inline void buf_put_i64(weir_buf *b, int64_t v) {
    if (b->cap - b->len < 8 && weir_buf_reserve(b, 8) != WEIR_OK) return;
    if (b->failed) return;
    uint64_t u = (uint64_t)v;
    for (size_t i = 0; i < 8; i++) b->ptr[b->len + i] = (uint8_t)(u >> (8 * i));
    b->len += 8;
}

/* The buffer's bytes as a list for the host: the buffer itself when non-empty (it is malloc'd),
 * else NULL (the canonical ABI frees only non-empty lists). The buffer is left empty. */
static weir__list list_from_buf(weir_buf *b) {
    weir__list l = {NULL, 0};
    if (b->len > 0 && !b->failed) {
        l.ptr = b->ptr;
        l.len = b->len;
    } else {
        free(b->ptr);
    }
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->failed = false;
    return l;
}

/* =============================================================================================
 * UTF-8 and error messages
 * ============================================================================================= */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid, with *bad the length
 * of the maximal invalid prefix that String::from_utf8_lossy replaces by one U+FFFD. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end, size_t *bad) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t avail = (size_t)(end - p) - 1;
    for (size_t i = 1; i <= need; i++) {
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (i > avail || p[i] < l || p[i] > h) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

bool weir_utf8_valid(const void *s, size_t len) {
    if (len == 0) return true;
    const uint8_t *p = (const uint8_t *)s, *end = p + len;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t bad, n = utf8_seq(p, end, &bad);
        if (n == 0) return false;
        p += n;
    }
    return true;
}

int weir_buf_append_utf8_lossy(weir_buf *out, const void *s, size_t len) {
    if (len == 0) return out->failed ? WEIR_ERR : WEIR_OK;
    const uint8_t *p = (const uint8_t *)s, *end = p + len, *run = p;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t bad, n = utf8_seq(p, end, &bad);
        if (n > 0) {
            p += n;
            continue;
        }
        weir_buf_append(out, run, (size_t)(p - run));
        weir_buf_append(out, "\xEF\xBF\xBD", 3);
        p += bad;
        run = p;
    }
    return weir_buf_append(out, run, (size_t)(p - run));
}

int weir_vfail(weir_error *err, const char *fmt, va_list ap) {
    if (err == NULL) return WEIR_ERR;
    weir_buf b = {0};
    if (weir_buf_vprintf(&b, fmt, ap) == WEIR_OK && weir_buf_push(&b, 0) == WEIR_OK) {
        weir_error_free(err);
        err->msg = (char *)b.ptr;
        err->len = b.len - 1;
    } else {
        weir_buf_free(&b);
    }
    return WEIR_ERR;
}

int weir_fail(weir_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir_vfail(err, fmt, ap);
    va_end(ap);
    return WEIR_ERR;
}

void weir_error_free(weir_error *err) {
    free(err->msg);
    err->msg = NULL;
    err->len = 0;
}

/* The message of `e` (or `fallback` when none was set) as a UTF-8 list for the host; frees `e`. */
static weir__list message_list(weir_error *e, const char *fallback) {
    weir__list l = {NULL, 0};
    if (e->msg != NULL && e->len > 0 && weir_utf8_valid(e->msg, e->len)) {
        l.ptr = (uint8_t *)e->msg;
        l.len = e->len;
        e->msg = NULL;
        e->len = 0;
        return l;
    }
    weir_buf b = {0};
    if (e->msg != NULL && e->len > 0)
        weir_buf_append_utf8_lossy(&b, e->msg, e->len);
    else
        weir_buf_append_str(&b, fallback);
    weir_error_free(e);
    return list_from_buf(&b);
}

void weir__log_format(weir_buf *out, const char *fmt, va_list ap) {
    weir_buf raw = {0};
    weir_buf_vprintf(&raw, fmt, ap);
    if (weir_utf8_valid(raw.ptr, raw.len)) {
        *out = raw;
    } else {
        weir_buf_append_utf8_lossy(out, raw.ptr, raw.len);
        weir_buf_free(&raw);
    }
    if (out->failed) weir_buf_clear(out);
}

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

/* Bytes of event i in a data column with its end offsets (checked by weir_batch_open). */
static inline weir_bytes column_item(weir_bytes data, weir_bytes ends, uint32_t i) {
    uint32_t start = i == 0 ? 0 : le32(ends.ptr + 4 * ((size_t)i - 1));
    uint32_t end = le32(ends.ptr + 4 * (size_t)i);
    weir_bytes v = {data.len ? data.ptr + start : data.ptr, (size_t)(end - start)};
    return v;
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
static bool configured;
static const char NOT_CONFIGURED[] = "called before a successful `configure`";
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
    configured = rc == WEIR_OK;
    if (!configured) *err = message_list(&e, "invalid config");
    weir_error_free(&e);
    return configured;
}

static void batch_out_from(weir__batch_out *o, weir_builder *b) {
    o->payloads = list_from_buf(&b->payloads);
    o->payload_ends = list_from_buf(&b->payload_ends);
    o->keys = list_from_buf(&b->keys);
    o->key_ends = list_from_buf(&b->key_ends);
    o->times = list_from_buf(&b->times);
    o->headers = list_from_buf(&b->headers);
    o->header_ends = list_from_buf(&b->header_ends);
    o->origins = list_from_buf(&b->origins);
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
    if (!configured) {
        weir_fail(&e, "%s", NOT_CONFIGURED);
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
    *err = message_list(&e, "event failed (no message given)");
    weir_builder_free(&b);
    return false;
}

/* =============================================================================================
 * Aggregates
 * ============================================================================================= */

struct weir_results {
    weir_buf *items;
    size_t len, cap;
    bool failed;
};

weir_buf *weir_result_add(weir_results *r) {
    if (r == NULL || r->failed) return NULL;
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 2;
        weir_buf *items = (weir_buf *)realloc(r->items, cap * sizeof *items);
        if (items == NULL) {
            r->failed = true;
            return NULL;
        }
        r->items = items;
        r->cap = cap;
    }
    weir_buf *b = &r->items[r->len++];
    memset(b, 0, sizeof *b);
    return b;
}

int weir_result_push(weir_results *r, const void *data, size_t len) {
    weir_buf *b = weir_result_add(r);
    return b == NULL ? WEIR_ERR : weir_buf_append(b, data, len);
}

static bool results_failed(const weir_results *r) {
    if (r->failed) return true;
    for (size_t i = 0; i < r->len; i++)
        if (r->items[i].failed) return true;
    return false;
}

size_t weir__results_len(const weir_results *r) { return r ? r->len : 0; }

weir__list weir__results_take(weir_results *r, size_t i) { return list_from_buf(&r->items[i]); }

void weir__results_free(weir_results *r) {
    if (r == NULL) return;
    for (size_t i = 0; i < r->len; i++) weir_buf_free(&r->items[i]);
    free(r->items);
    free(r);
}

/* Fills `acc` (empty) with a new accumulator. */
static int acc_create(const weir_aggregate *a, weir_buf *acc, weir_error *e) {
    if (a->create != NULL) {
        if (a->create(acc, e) != WEIR_OK) return WEIR_ERR;
    } else if (a->acc_size > 0) {
        if (weir_buf_reserve(acc, a->acc_size) == WEIR_OK) {
            memset(acc->ptr, 0, a->acc_size);
            acc->len = a->acc_size;
        }
    }
    if (acc->failed) return weir_fail(e, "out of memory creating an accumulator");
    if (a->acc_size > 0 && acc->len != a->acc_size)
        return weir_fail(e, "`create` made an accumulator of %zu bytes, expected %zu", acc->len,
                         a->acc_size);
    return WEIR_OK;
}

/* Loads stored accumulator bytes into `acc` (empty): a new accumulator when empty (as the Rust
 * SDK), a size check for fixed-size accumulators. */
static int acc_load(const weir_aggregate *a, weir_bytes stored, weir_buf *acc, weir_error *e) {
    if (stored.len == 0) return acc_create(a, acc, e);
    if (a->acc_size > 0 && stored.len != a->acc_size)
        return weir_fail(e, "cannot decode accumulator: it has %zu bytes, expected %zu (changing "
                            "the accumulator needs a new state_version and a migrate)",
                         stored.len, a->acc_size);
    /* The copy is malloc'd, hence aligned for any type (WEIR_ACC casts it). */
    if (weir_buf_append_bytes(acc, stored) != WEIR_OK)
        return weir_fail(e, "out of memory loading an accumulator");
    return WEIR_OK;
}

/* Checks an accumulator a callback returned. */
static int acc_check(const weir_aggregate *a, const weir_buf *acc, const char *what,
                     weir_error *e) {
    if (acc->failed) return weir_fail(e, "out of memory in `%s`", what);
    if (a->acc_size > 0 && acc->len != a->acc_size)
        return weir_fail(e, "`%s` left an accumulator of %zu bytes, expected %zu", what,
                         acc->len, a->acc_size);
    return WEIR_OK;
}

bool weir__agg_configure(const weir_aggregate *a, const uint8_t *config, size_t len,
                         weir__list *err) {
    return weir__configure(a->configure, config, len, err);
}

bool weir__agg_create(const weir_aggregate *a, weir__list *ret, weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0};
    if (acc_create(a, &acc, &e) != WEIR_OK) {
        weir_buf_free(&acc);
        *err = message_list(&e, "`create` failed");
        return false;
    }
    *ret = list_from_buf(&acc);
    return true;
}

bool weir__agg_add(const weir_aggregate *a, weir_bytes data, weir_bytes ends, weir_bytes targets,
                   const weir_columns *cols, weir__list *ret_data, weir__list *ret_ends,
                   uint32_t *err_index, weir__list *err) {
    weir_error e = {0};
    weir_batch in;
    weir_buf *slots = NULL; /* accumulator i, loaded when slots[i].ptr or loaded[i] */
    uint8_t *loaded = NULL;
    size_t n = ends.len / 4;
    *err_index = 0;
    if (!configured) {
        weir_fail(&e, "%s", NOT_CONFIGURED);
        goto fail;
    }
    if (weir_batch_open(&in, cols, &e) != WEIR_OK) goto fail;
    if (ends.len % 4 != 0 || a->add == NULL) {
        weir_fail(&e, a->add == NULL ? "the aggregate has no `add`"
                                     : "malformed accumulators: `ends` is not a u32 list");
        goto fail;
    }
    uint32_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t end = le32(ends.ptr + 4 * i);
        if (end < prev || end > data.len) {
            weir_fail(&e, "malformed accumulators: end offset %zu is out of order or bounds", i);
            goto fail;
        }
        prev = end;
    }
    if (n > 0) {
        slots = (weir_buf *)calloc(n, sizeof *slots);
        loaded = (uint8_t *)calloc(n, 1);
        if (slots == NULL || loaded == NULL) {
            weir_fail(&e, "out of memory");
            goto fail;
        }
    }
    uint32_t events = (uint32_t)(targets.len / 4 < in.len ? targets.len / 4 : in.len);
    for (uint32_t i = 0; i < events; i++) {
        uint32_t t = le32(targets.ptr + 4 * (size_t)i);
        *err_index = i;
        if (t >= n) {
            weir_fail(&e, "target %u is not an accumulator index", t);
            goto fail;
        }
        if (!loaded[t]) {
            if (acc_load(a, column_item(data, ends, t), &slots[t], &e) != WEIR_OK) goto fail;
            loaded[t] = 1;
        }
        weir_event ev = weir_batch_get(&in, i);
        if (a->add(&slots[t], &ev, &e) != WEIR_OK || acc_check(a, &slots[t], "add", &e) != WEIR_OK)
            goto fail;
    }
    *err_index = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += loaded[i] ? slots[i].len : column_item(data, ends, (uint32_t)i).len;
    if (total > UINT32_MAX) {
        weir_fail(&e, "accumulators exceed 4 GiB");
        goto fail;
    }
    weir_buf out_data = {0}, out_ends = {0};
    weir_buf_reserve(&out_data, total);
    weir_buf_reserve(&out_ends, 4 * n);
    for (size_t i = 0; i < n; i++) {
        if (loaded[i])
            weir_buf_append(&out_data, slots[i].ptr, slots[i].len);
        else
            weir_buf_append_bytes(&out_data, column_item(data, ends, (uint32_t)i));
        buf_put_u32(&out_ends, (uint32_t)out_data.len);
    }
    for (size_t i = 0; i < n; i++) weir_buf_free(&slots[i]);
    free(slots);
    free(loaded);
    if (out_data.failed || out_ends.failed) {
        weir_buf_free(&out_data);
        weir_buf_free(&out_ends);
        weir_fail(&e, "out of memory writing the accumulators");
        *err = message_list(&e, "out of memory");
        return false;
    }
    *ret_data = list_from_buf(&out_data);
    *ret_ends = list_from_buf(&out_ends);
    return true;
fail:
    if (slots != NULL)
        for (size_t i = 0; i < n; i++) weir_buf_free(&slots[i]);
    free(slots);
    free(loaded);
    *err = message_list(&e, "`add` failed (no message given)");
    return false;
}

bool weir__agg_merge(const weir_aggregate *a, weir_bytes x, weir_bytes y, weir__list *ret,
                     weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0}, other = {0};
    if (!configured) {
        weir_fail(&e, "%s", NOT_CONFIGURED);
    } else if (a->merge == NULL) {
        weir_fail(&e, "the aggregate has no `merge`");
    } else if (acc_load(a, x, &acc, &e) == WEIR_OK && acc_load(a, y, &other, &e) == WEIR_OK &&
               a->merge(&acc, &other, &e) == WEIR_OK && acc_check(a, &acc, "merge", &e) == WEIR_OK) {
        weir_buf_free(&other);
        *ret = list_from_buf(&acc);
        return true;
    }
    weir_buf_free(&acc);
    weir_buf_free(&other);
    *err = message_list(&e, "`merge` failed (no message given)");
    return false;
}

bool weir__agg_finish(const weir_aggregate *a, weir_bytes key, weir_window window,
                      weir_bytes stored, weir_results **ret, weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0};
    weir_results *r = (weir_results *)calloc(1, sizeof *r);
    *ret = NULL;
    if (r == NULL) {
        weir_fail(&e, "out of memory");
    } else if (!configured) {
        weir_fail(&e, "%s", NOT_CONFIGURED);
    } else if (a->finish == NULL) {
        weir_fail(&e, "the aggregate has no `finish`");
    } else if (acc_load(a, stored, &acc, &e) == WEIR_OK &&
               a->finish(key, window, &acc, r, &e) == WEIR_OK) {
        if (!results_failed(r)) {
            weir_buf_free(&acc);
            *ret = r;
            return true;
        }
        weir_fail(&e, "out of memory writing the result of `finish`");
    }
    weir_buf_free(&acc);
    weir__results_free(r);
    *err = message_list(&e, "`finish` failed (no message given)");
    return false;
}

bool weir__agg_migrate(const weir_aggregate *a, uint32_t from, weir_bytes stored, weir__list *ret,
                       weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0};
    if (!configured) {
        weir_fail(&e, "%s", NOT_CONFIGURED);
    } else if (from == a->state_version) {
        if (weir_buf_append_bytes(&acc, stored) == WEIR_OK) {
            *ret = list_from_buf(&acc);
            return true;
        }
        weir_fail(&e, "out of memory");
    } else if (a->migrate == NULL) {
        weir_fail(&e, "cannot migrate accumulators from state version %u to %u", from,
                  a->state_version);
    } else if (a->migrate(from, stored, &acc, &e) == WEIR_OK &&
               acc_check(a, &acc, "migrate", &e) == WEIR_OK) {
        *ret = list_from_buf(&acc);
        return true;
    }
    weir_buf_free(&acc);
    *err = message_list(&e, "`migrate` failed (no message given)");
    return false;
}

/* =============================================================================================
 * JSON numbers, read exactly as serde_json 1.x reads them (without `float_roundtrip`): integers
 * that fit stay u64/i64, everything else is a double computed as `significand (*|/) 10^exp`.
 * ============================================================================================= */

enum { NUM_U64, NUM_I64, NUM_F64 };

typedef struct jnum {
    int kind;
    uint64_t u;
    int64_t i;
    double f;
} jnum;

static const double POW10[309] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35,
    1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59,
    1e60, 1e61, 1e62, 1e63, 1e64, 1e65, 1e66, 1e67, 1e68, 1e69, 1e70, 1e71,
    1e72, 1e73, 1e74, 1e75, 1e76, 1e77, 1e78, 1e79, 1e80, 1e81, 1e82, 1e83,
    1e84, 1e85, 1e86, 1e87, 1e88, 1e89, 1e90, 1e91, 1e92, 1e93, 1e94, 1e95,
    1e96, 1e97, 1e98, 1e99, 1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107,
    1e108, 1e109, 1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129, 1e130, 1e131,
    1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139, 1e140, 1e141, 1e142, 1e143,
    1e144, 1e145, 1e146, 1e147, 1e148, 1e149, 1e150, 1e151, 1e152, 1e153, 1e154, 1e155,
    1e156, 1e157, 1e158, 1e159, 1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167,
    1e168, 1e169, 1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189, 1e190, 1e191,
    1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199, 1e200, 1e201, 1e202, 1e203,
    1e204, 1e205, 1e206, 1e207, 1e208, 1e209, 1e210, 1e211, 1e212, 1e213, 1e214, 1e215,
    1e216, 1e217, 1e218, 1e219, 1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227,
    1e228, 1e229, 1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249, 1e250, 1e251,
    1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259, 1e260, 1e261, 1e262, 1e263,
    1e264, 1e265, 1e266, 1e267, 1e268, 1e269, 1e270, 1e271, 1e272, 1e273, 1e274, 1e275,
    1e276, 1e277, 1e278, 1e279, 1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287,
    1e288, 1e289, 1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
};

static const char ERR_EOF_VALUE[] = "EOF while parsing a value";
static const char ERR_INVALID_NUMBER[] = "invalid number";
static const char ERR_OUT_OF_RANGE[] = "number out of range";

typedef struct numreader {
    const uint8_t *p, *end;
} numreader;

#define NPEEK(r) ((r)->p < (r)->end ? *(r)->p : 0)
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* serde_json's `overflow!(a * 10 + b, max)`. */
static inline bool overflows_u64(uint64_t a, unsigned b) {
    return a >= UINT64_MAX / 10 && (a > UINT64_MAX / 10 || b > UINT64_MAX % 10);
}

static const char *f64_from_parts(bool positive, uint64_t sig, int32_t exponent, jnum *out) {
    double f = (double)sig;
    for (;;) {
        int64_t a = exponent < 0 ? -(int64_t)exponent : exponent;
        if (a <= 308) {
            if (exponent >= 0) {
                f *= POW10[a];
                if (isinf(f)) return ERR_OUT_OF_RANGE;
            } else {
                f /= POW10[a];
            }
            break;
        }
        if (f == 0.0) break;
        if (exponent >= 0) return ERR_OUT_OF_RANGE;
        f /= 1e308;
        exponent += 308;
    }
    out->kind = NUM_F64;
    out->f = positive ? f : -f;
    return NULL;
}

static const char *parse_exponent(numreader *r, bool positive, uint64_t sig, int32_t start,
                                  jnum *out) {
    r->p++; /* e or E */
    bool positive_exp = true;
    if (NPEEK(r) == '+') {
        r->p++;
    } else if (NPEEK(r) == '-') {
        r->p++;
        positive_exp = false;
    }
    if (r->p >= r->end) return ERR_EOF_VALUE;
    uint8_t c = *r->p++;
    if (!IS_DIGIT(c)) return ERR_INVALID_NUMBER;
    int32_t exp = c - '0';
    while (IS_DIGIT(NPEEK(r))) {
        int32_t d = *r->p++ - '0';
        if (exp >= INT32_MAX / 10 && (exp > INT32_MAX / 10 || d > INT32_MAX % 10)) {
            /* serde_json: an error instead of infinity, else zero. */
            if (sig != 0 && positive_exp) return ERR_OUT_OF_RANGE;
            while (IS_DIGIT(NPEEK(r))) r->p++;
            out->kind = NUM_F64;
            out->f = positive ? 0.0 : -0.0;
            return NULL;
        }
        exp = exp * 10 + d;
    }
    int64_t final = positive_exp ? (int64_t)start + exp : (int64_t)start - exp;
    if (final > INT32_MAX) final = INT32_MAX;
    if (final < INT32_MIN) final = INT32_MIN;
    return f64_from_parts(positive, sig, (int32_t)final, out);
}

static const char *parse_decimal(numreader *r, bool positive, uint64_t sig, int32_t before,
                                 jnum *out) {
    r->p++; /* '.' */
    int32_t after = 0;
    while (IS_DIGIT(NPEEK(r))) {
        unsigned d = *r->p - '0';
        if (overflows_u64(sig, d)) {
            /* Further digits are ignored. */
            while (IS_DIGIT(NPEEK(r))) r->p++;
            if (NPEEK(r) == 'e' || NPEEK(r) == 'E')
                return parse_exponent(r, positive, sig, before + after, out);
            return f64_from_parts(positive, sig, before + after, out);
        }
        r->p++;
        sig = sig * 10 + d;
        after--;
    }
    if (after == 0) return r->p < r->end ? ERR_INVALID_NUMBER : ERR_EOF_VALUE;
    if (NPEEK(r) == 'e' || NPEEK(r) == 'E') return parse_exponent(r, positive, sig, before + after, out);
    return f64_from_parts(positive, sig, before + after, out);
}

/* Reads the number at r->p (a '-' or a digit); on success r->p is after it. */
static const char *parse_number(numreader *r, jnum *out) {
    bool positive = true;
    if (NPEEK(r) == '-') {
        r->p++;
        positive = false;
    }
    if (r->p >= r->end) return ERR_EOF_VALUE;
    uint8_t c = *r->p++;
    uint64_t sig;
    if (c == '0') {
        if (IS_DIGIT(NPEEK(r))) return ERR_INVALID_NUMBER;
        sig = 0;
    } else if (c >= '1' && c <= '9') {
        sig = c - '0';
        while (IS_DIGIT(NPEEK(r))) {
            unsigned d = *r->p - '0';
            if (overflows_u64(sig, d)) {
                /* A long integer: the remaining digits only scale it. */
                int32_t exponent = 0;
                while (IS_DIGIT(NPEEK(r))) {
                    r->p++;
                    if (exponent < INT32_MAX) exponent++;
                }
                if (NPEEK(r) == '.') return parse_decimal(r, positive, sig, exponent, out);
                if (NPEEK(r) == 'e' || NPEEK(r) == 'E')
                    return parse_exponent(r, positive, sig, exponent, out);
                return f64_from_parts(positive, sig, exponent, out);
            }
            r->p++;
            sig = sig * 10 + d;
        }
    } else {
        return ERR_INVALID_NUMBER;
    }
    if (NPEEK(r) == '.') return parse_decimal(r, positive, sig, 0, out);
    if (NPEEK(r) == 'e' || NPEEK(r) == 'E') return parse_exponent(r, positive, sig, 0, out);
    if (positive) {
        out->kind = NUM_U64;
        out->u = sig;
    } else {
        /* serde_json: `(sig as i64).wrapping_neg()`, a float when that is >= 0 (`-0`, or a
         * magnitude beyond 2^63). */
        uint64_t neg = 0 - sig;
        if (neg <= (uint64_t)INT64_MAX) {
            out->kind = NUM_F64;
            out->f = -(double)sig;
        } else {
            out->kind = NUM_I64;
            out->i = sig == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)sig;
        }
    }
    return NULL;
}

/* =============================================================================================
 * JSON reader: validation into a tape of tokens
 * ============================================================================================= */

enum {
    TOK_ESCAPED = 1, /* strings: contains a backslash escape */
    TOK_FLOAT = 2,   /* numbers: read as a double (written in shortest float form) */
};

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
            size_t bad, n = utf8_seq(s + i, s + ps->len, &bad);
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
        if (start + k >= ps->len) return jfail(ps, ERR_EOF_VALUE, ps->len);
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
    if (ps->i >= ps->len) return jfail(ps, ERR_EOF_VALUE, ps->len);
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
    const char *err = parse_number(&r, &n);
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

static inline const weir_json_token *tok(const weir_json *d, weir_json_value v) {
    return v < d->ntoks ? &d->toks[v] : NULL;
}

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

/* Decodes a validated string's escapes byte by byte (bounds-checked all the same). */
typedef struct jstr_iter {
    const uint8_t *p, *end;
    uint8_t pend[4];
    uint8_t n, k;
} jstr_iter;

static void jstr_init(jstr_iter *it, const weir_json *d, const weir_json_token *t) {
    it->p = d->text + t->start;
    it->end = d->text + t->end;
    it->n = it->k = 0;
}

static int jstr_next(jstr_iter *it) {
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
    jstr_init(&it, doc, t);
    for (size_t k = 0; k < name_len; k++)
        if (jstr_next(&it) != (uint8_t)name[k]) return false;
    return jstr_next(&it) < 0;
}

/* True when string tokens a and b decode to the same bytes. */
static bool jstr_tok_eq(const weir_json *d, const weir_json_token *a, const weir_json_token *b) {
    if (!(a->flags & TOK_ESCAPED) && !(b->flags & TOK_ESCAPED))
        return a->end - a->start == b->end - b->start &&
               memcmp(d->text + a->start, d->text + b->start, a->end - a->start) == 0;
    jstr_iter x, y;
    jstr_init(&x, d, a);
    jstr_init(&y, d, b);
    for (;;) {
        int cx = jstr_next(&x), cy = jstr_next(&y);
        if (cx != cy) return false;
        if (cx < 0) return true;
    }
}

int weir_json_string(const weir_json *doc, weir_json_value s, weir_buf *out) {
    const weir_json_token *t = tok(doc, s);
    if (t == NULL || t->kind != WEIR_JSON_STRING) return WEIR_ERR;
    if (!(t->flags & TOK_ESCAPED)) return weir_buf_append(out, doc->text + t->start, t->end - t->start);
    jstr_iter it;
    jstr_init(&it, doc, t);
    int c;
    while ((c = jstr_next(&it)) >= 0) weir_buf_push(out, (uint8_t)c);
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
    return parse_number(&r, n) == NULL;
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
        size_t bad, n = utf8_seq(p, end, &bad);
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
    jstr_init(&it, d, t);
    weir_buf_push(out, '"');
    int c;
    while ((c = jstr_next(&it)) >= 0) {
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
                if (win[j] != UINT32_MAX && jstr_tok_eq(d, &d->toks[keys[i]], &d->toks[keys[j]])) {
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
        jstr_init(&it, d, &d->toks[keys[i]]);
        uint64_t x = 0xcbf29ce484222325u; /* FNV-1a */
        int c;
        while ((c = jstr_next(&it)) >= 0) x = (x ^ (uint8_t)c) * 0x100000001b3u;
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
                if (win[mj] != UINT32_MAX && jstr_tok_eq(d, &d->toks[keys[mi]], &d->toks[keys[mj]])) {
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
