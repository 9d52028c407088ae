/* weir.c — the world-independent part of the C SDK (see weir.h), with weir_batch.c (checked
 * views of packed batches, the output builder, the per-event loop), weir_aggregate.c (the
 * aggregate loops), weir_json_number.c, weir_json.c and weir_json_write.c (the strict JSON
 * reader/writer). This file: byte buffers, UTF-8 and error messages.
 *
 * `weir plugin build` compiles these files into every C plugin. They include no generated header:
 * it works on plain pointer/length views, and the macros of weir.h convert. Nothing here trusts
 * its input: batches are checked once when opened, JSON is validated before it is read, and every
 * allocation is checked (a failed one becomes an error, never a crash). */
#include "weir_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The buffer's bytes as a list for the host: the buffer itself when non-empty (it is malloc'd),
 * else NULL (the canonical ABI frees only non-empty lists). The buffer is left empty. */
weir__list weir__list_from_buf(weir_buf *b) {
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
size_t weir__utf8_seq(const uint8_t *p, const uint8_t *end, size_t *bad) {
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
        size_t bad, n = weir__utf8_seq(p, end, &bad);
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
weir__list weir__message_list(weir_error *e, const char *fallback) {
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
    return weir__list_from_buf(&b);
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
