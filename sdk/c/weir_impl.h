/* weir_impl.h — private to the C SDK's own sources (weir*.c), not for plugins: the helpers
 * and JSON internals those files share. Names outside weir.h's API carry the `weir__` prefix so
 * that they cannot collide with a plugin's symbols. */
#ifndef WEIR_IMPL_H
#define WEIR_IMPL_H

#include "weir.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Little-endian integers and buffers (weir.c)
 * ------------------------------------------------------------------------------------------- */

static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return (int64_t)v;
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

/* The buffer's bytes as a list for the host (see weir.c). */
weir__list weir__list_from_buf(weir_buf *b);
/* The message of `e` (or `fallback`) as a UTF-8 list for the host; frees `e`. */
weir__list weir__message_list(weir_error *e, const char *fallback);
/* Length of the valid UTF-8 sequence at p (1..4), or 0 with *bad set (see weir.c). */
size_t weir__utf8_seq(const uint8_t *p, const uint8_t *end, size_t *bad);

/* ---------------------------------------------------------------------------------------------
 * Packed batches and world glue (weir_batch.c)
 * ------------------------------------------------------------------------------------------- */

/* Bytes of event i in a data column with its end offsets (checked by weir_batch_open). */
static inline weir_bytes column_item(weir_bytes data, weir_bytes ends, uint32_t i) {
    uint32_t start = i == 0 ? 0 : le32(ends.ptr + 4 * ((size_t)i - 1));
    uint32_t end = le32(ends.ptr + 4 * (size_t)i);
    weir_bytes v = {data.len ? data.ptr + start : data.ptr, (size_t)(end - start)};
    return v;
}

/* Set by a successful `configure`; every other entry point refuses to run before it. */
extern bool weir__configured;
extern const char WEIR__NOT_CONFIGURED[];

/* ---------------------------------------------------------------------------------------------
 * JSON internals (weir_json_number.c, weir_json.c, weir_json_write.c)
 * ------------------------------------------------------------------------------------------- */

/* Token flags. */
enum {
    TOK_ESCAPED = 1, /* strings: contains a backslash escape */
    TOK_FLOAT = 2,   /* numbers: read as a double (written in shortest float form) */
};

/* A JSON number as serde_json reads it. */
enum { NUM_U64, NUM_I64, NUM_F64 };

typedef struct jnum {
    int kind;
    uint64_t u;
    int64_t i;
    double f;
} jnum;

typedef struct numreader {
    const uint8_t *p, *end;
} numreader;

#define NPEEK(r) ((r)->p < (r)->end ? *(r)->p : 0)
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

extern const char WEIR__ERR_EOF_VALUE[];
/* Reads the number at r->p (serde_json's grammar and rounding); NULL or the error message. */
const char *weir__parse_number(numreader *r, jnum *out);

static inline const weir_json_token *tok(const weir_json *d, weir_json_value v) {
    return v < d->ntoks ? &d->toks[v] : NULL;
}

/* Decodes a validated string's escapes byte by byte (bounds-checked all the same). */
typedef struct jstr_iter {
    const uint8_t *p, *end;
    uint8_t pend[4];
    uint8_t n, k;
} jstr_iter;

void weir__jstr_init(jstr_iter *it, const weir_json *d, const weir_json_token *t);
/* The next decoded byte, or -1 at the end. */
int weir__jstr_next(jstr_iter *it);
bool weir__jstr_tok_eq(const weir_json *d, const weir_json_token *a, const weir_json_token *b);

#endif
