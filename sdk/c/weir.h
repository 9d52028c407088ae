/* weir.h — the C SDK for weir operators: event views over the packed batches of wit/types.wit,
 * an output builder, the glue that exports the `transform`, `aggregate` and `process` worlds,
 * host logging, and a small strict JSON reader/writer that agrees with serde_json.
 *
 * It is not a binding generator: `weir plugin build` generates the world's bindings
 * (target/bindings/<world>.h) with wit-bindgen and compiles the SDK's weir*.c files next to the
 * plugin's sources.
 * An operator includes the world header first, then this one:
 *
 *     #include "transform.h"   // generated from the world named in weir-plugin.toml
 *     #include "weir.h"
 *
 *     static int on_event(const weir_event *e, weir_output *out, weir_error *err) {
 *         if (e->payload.len == 0) return weir_fail(err, "empty payload");
 *         return weir_forward(out);
 *     }
 *     WEIR_EXPORT_TRANSFORM(NULL, on_event)
 *
 * Everything world-independent (views, buffers, JSON) lives in the weir*.c files and works on
 * plain pointer/length views; the part below "World glue" is compiled only once a generated world
 * header has been included, and is what names the generated types.
 *
 * Memory rules, in short: views (`weir_bytes`, `weir_event`) borrow from the call's input and are
 * valid until the callback returns; `weir_buf`s are owned growable buffers (malloc/realloc) that
 * remember an allocation failure (`failed`), so a sequence of appends can be checked once; what
 * the SDK hands to the host it allocates itself and the canonical ABI frees it. See README.md. */
#ifndef WEIR_H
#define WEIR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WEIR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define WEIR_PRINTF(fmt, args)
#endif

/* Return codes: every SDK function returning `int` returns WEIR_OK or WEIR_ERR; callbacks
 * return WEIR_OK, or non-zero (usually `return weir_fail(err, ...)`) to fail. */
#define WEIR_OK 0
#define WEIR_ERR 1

/* ---------------------------------------------------------------------------------------------
 * Byte views, owned buffers, errors
 * ------------------------------------------------------------------------------------------- */

/* A borrowed byte range (not NUL-terminated). */
typedef struct weir_bytes {
    const uint8_t *ptr;
    size_t len;
} weir_bytes;

/* A view of a NUL-terminated string (without the NUL). */
weir_bytes weir_cstr(const char *s);
/* True when `a` holds exactly the bytes of the NUL-terminated `s`. */
bool weir_bytes_eq(weir_bytes a, const char *s);

/* An owned, growable byte buffer. Zero-initialise it (`weir_buf b = {0};`), append, and free it
 * with weir_buf_free. When an allocation fails the buffer keeps its content, sets `failed`, and
 * ignores further appends (each returning WEIR_ERR) until weir_buf_clear. */
typedef struct weir_buf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
    bool failed;
} weir_buf;

int weir_buf_reserve(weir_buf *b, size_t additional);
int weir_buf_append(weir_buf *b, const void *data, size_t len);
int weir_buf_append_bytes(weir_buf *b, weir_bytes data);
int weir_buf_append_str(weir_buf *b, const char *s);
int weir_buf_push(weir_buf *b, uint8_t byte);
/* Decimal text of an integer. */
int weir_buf_append_i64(weir_buf *b, int64_t v);
int weir_buf_append_u64(weir_buf *b, uint64_t v);
/* printf-style formatting appended to the buffer. */
int weir_buf_printf(weir_buf *b, const char *fmt, ...) WEIR_PRINTF(2, 3);
int weir_buf_vprintf(weir_buf *b, const char *fmt, va_list ap);
/* Sets the length to `len` (only shrinks); keeps the capacity. */
void weir_buf_truncate(weir_buf *b, size_t len);
/* Empties the buffer and forgets an allocation failure; keeps the capacity. */
void weir_buf_clear(weir_buf *b);
void weir_buf_free(weir_buf *b);
weir_bytes weir_buf_view(const weir_buf *b);

/* Why a callback failed: a message the SDK hands to the host (event error, config error...).
 * Set it with weir_fail; the SDK frees it. Messages that are not UTF-8 are repaired (U+FFFD). */
typedef struct weir_error {
    char *msg;
    size_t len;
} weir_error;

/* Sets `err` (if not NULL) to the formatted message and returns WEIR_ERR, so that a callback can
 * `return weir_fail(err, "field `%s` is missing", name);`. */
int weir_fail(weir_error *err, const char *fmt, ...) WEIR_PRINTF(2, 3);
int weir_vfail(weir_error *err, const char *fmt, va_list ap);
void weir_error_free(weir_error *err);

/* Appends `len` bytes of `s` to `out`, replacing each invalid UTF-8 sequence by U+FFFD exactly as
 * Rust's String::from_utf8_lossy does. */
int weir_buf_append_utf8_lossy(weir_buf *out, const void *s, size_t len);
/* True when `s` is valid UTF-8. */
bool weir_utf8_valid(const void *s, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Events and headers
 * ------------------------------------------------------------------------------------------- */

/* One input event, borrowed from the packed input batch (valid during the callback). */
typedef struct weir_event {
    weir_bytes key;     /* empty: no key */
    int64_t time;       /* event time, ms since the Unix epoch */
    weir_bytes payload;
    weir_bytes headers; /* packed: u32 LE name length, name, u32 LE value length, value, ... */
    uint32_t index;     /* position in the input batch (what an event error names) */
} weir_event;

/* Iterates over packed headers: `weir_header_iter it = weir_headers(e);
 * while (weir_header_next(&it, &name, &value)) ...`. A truncated entry ends the iteration and sets
 * `malformed` (the host never sends one). */
typedef struct weir_header_iter {
    weir_bytes rest;
    bool malformed;
} weir_header_iter;

weir_header_iter weir_headers(const weir_event *e);
bool weir_header_next(weir_header_iter *it, weir_bytes *name, weir_bytes *value);
/* The value of the first header called `name`; false when there is none. */
bool weir_event_header(const weir_event *e, const char *name, weir_bytes *value);
/* Appends one header entry to a packed header buffer (for weir_emit / weir_emit_commit_as). */
int weir_headers_push(weir_buf *headers, weir_bytes name, weir_bytes value);

/* ---------------------------------------------------------------------------------------------
 * Packed batches (lower level; the world glue uses these, operators rarely need them)
 * ------------------------------------------------------------------------------------------- */

/* Borrowed columns of a packed batch, in the order of the WIT record. */
typedef struct weir_columns {
    weir_bytes payloads, payload_ends, keys, key_ends, times, headers, header_ends, origins;
} weir_columns;

/* A checked, read-only batch: after weir_batch_open succeeded every access is in bounds. */
typedef struct weir_batch {
    weir_columns cols;
    uint32_t len;
} weir_batch;

/* Checks the layout of `cols` (lengths, non-decreasing end offsets within the data). */
int weir_batch_open(weir_batch *b, const weir_columns *cols, weir_error *err);
/* Event `i` (< b->len) of an opened batch. */
weir_event weir_batch_get(const weir_batch *b, uint32_t i);

/* Owned columns of a batch being built. Zero-initialise; free with weir_builder_free. */
typedef struct weir_builder {
    weir_buf payloads, payload_ends, keys, key_ends, times, headers, header_ends, origins;
} weir_builder;

int weir_builder_push(weir_builder *b, weir_bytes key, int64_t time, weir_bytes headers,
                      weir_bytes payload, uint32_t origin);
/* Appends an event whose payload the caller has already appended to b->payloads. */
int weir_builder_finish_event(weir_builder *b, weir_bytes key, int64_t time, weir_bytes headers,
                              uint32_t origin);
/* Appends events lo..hi of `in` unchanged with origins lo..hi (one copy per column). */
int weir_builder_extend(weir_builder *b, const weir_batch *in, uint32_t lo, uint32_t hi);
uint32_t weir_builder_len(const weir_builder *b);
bool weir_builder_failed(const weir_builder *b);
void weir_builder_free(weir_builder *b);

/* ---------------------------------------------------------------------------------------------
 * Output: what an event callback emits (transform, process)
 * ------------------------------------------------------------------------------------------- */

/* Where a callback emits the events produced from the current input event (0..n of them, in
 * order). Every output event's origin is the current input event. Opaque. */
typedef struct weir_output weir_output;

/* Re-emits the input event unchanged (consecutive forwards are copied as one run). */
int weir_forward(weir_output *out);
/* Emits `payload` with the input's key, time and headers. */
int weir_emit_payload(weir_output *out, const void *payload, size_t len);
/* Emits an event with everything given (an empty key means "no key"). */
int weir_emit(weir_output *out, weir_bytes key, int64_t time, weir_bytes headers,
              weir_bytes payload);
/* Writes a payload in place: weir_emit_begin returns the buffer to append the payload to (the
 * end of the output's payload column; NULL outside a callback); weir_emit_commit emits it with
 * the input's key, time and headers, weir_emit_commit_as with the given ones. A payload begun and
 * neither committed nor aborted is dropped when the next emission begins or the callback returns.
 * Do not keep the returned pointer past the commit. */
weir_buf *weir_emit_begin(weir_output *out);
int weir_emit_commit(weir_output *out);
int weir_emit_commit_as(weir_output *out, weir_bytes key, int64_t time, weir_bytes headers);
void weir_emit_abort(weir_output *out);
/* The input event being handled (for a timer: key and time of the timer, no payload). */
const weir_event *weir_output_input(const weir_output *out);

/* ---------------------------------------------------------------------------------------------
 * Operator descriptions
 * ------------------------------------------------------------------------------------------- */

/* Called once per instance with the operator's `config` (JSON text, "{}" when absent), NUL-
 * terminated for convenience (`len` excludes the NUL). Failing refuses the pipeline at start. */
typedef int (*weir_configure_fn)(const char *config, size_t len, weir_error *err);
/* Called once per input event (transform, process `on_events`) or per fired timer (process
 * `on_timer`: `e` holds the timer's key and time, an empty payload and no headers). Failing makes
 * the host dead-letter that event with the message (and, in `process`, undo the call's state
 * changes); the other events of the batch go on. */
typedef int (*weir_event_fn)(const weir_event *e, weir_output *out, weir_error *err);

/* A window of an aggregate: [start, end), ms since the Unix epoch. */
typedef struct weir_window {
    int64_t start;
    int64_t end;
} weir_window;

/* The payloads a `finish` emits (usually one). Opaque. */
typedef struct weir_results weir_results;
/* A new, empty payload to write into; NULL when out of memory. The buffer is the SDK's: write
 * the payload before the next weir_result_add / weir_result_push or the callback's return. */
weir_buf *weir_result_add(weir_results *r);
/* Adds a payload holding a copy of `data`. */
int weir_result_push(weir_results *r, const void *data, size_t len);

/* A window aggregate. The host keeps one accumulator per (key, window) as opaque bytes; this
 * struct says how to create, update, merge and finish one.
 *
 * With `acc_size` > 0 accumulators are fixed-size (typically a struct of integers, cast with
 * WEIR_ACC): every callback gets a buffer of exactly `acc_size` bytes, aligned for any type; the
 * bytes stored are the struct's (wasm32 is little-endian), so changing the struct means raising
 * `state_version` and writing `migrate`. With `acc_size` == 0 accumulators are free-form bytes:
 * callbacks may rewrite and resize the buffer (weir_buf_clear + appends). */
typedef struct weir_aggregate {
    size_t acc_size;
    /* The version of the accumulator encoding (0 at first; see `state-version` in the WIT). */
    uint32_t state_version;
    /* Optional. */
    weir_configure_fn configure;
    /* Optional: fills a new accumulator (default: `acc_size` zero bytes, or empty). The host
     * calls it once per instance and starts every new window with a copy of the bytes, so it
     * must depend on nothing but the configuration. */
    int (*create)(weir_buf *acc, weir_error *err);
    /* Adds one event to an accumulator. Failing dead-letters that event (the host calls again
     * without it, with the accumulators as they were). */
    int (*add)(weir_buf *acc, const weir_event *e, weir_error *err);
    /* Merges `other` into `acc`, the earlier of the two in time (when sliding-window panes are
     * combined or session windows merge). The host merges in groups, all due together in one
     * call; the SDK folds each group left to right with this. Failing reports that group's
     * window (the host keeps its state and calls again without it). */
    int (*merge)(weir_buf *acc, const weir_buf *other, weir_error *err);
    /* The result of a window of `key` (empty: no key): add 0..n payloads to `out`. Called once
     * per window of the host's batched `finish`; failing reports this window (the host keeps its
     * state and calls again without it), the others are finished again. */
    int (*finish)(weir_bytes key, weir_window window, const weir_buf *acc, weir_results *out,
                  weir_error *err);
    /* Optional: converts an accumulator written by state version `from` (< state_version) into
     * `acc` (empty on entry). Without it such a restore fails with a clear message. */
    int (*migrate)(uint32_t from, weir_bytes old, weir_buf *acc, weir_error *err);
} weir_aggregate;

/* The accumulator in `buf` as a `type *` (fixed-size accumulators). */
#define WEIR_ACC(buf, type) ((type *)(void *)(buf)->ptr)

/* ---------------------------------------------------------------------------------------------
 * JSON: a strict reader (RFC 8259 with serde_json's limits) and a compact writer
 *
 * weir_json_parse checks the whole text and records its values in a tape of tokens referring to
 * the text (which must outlive the document); values are then read by token index. Reuse one
 * document across events (e.g. `static weir_json doc;`): parsing keeps the tape's memory.
 * The reader accepts what serde_json accepts (UTF-8, paired surrogates, no trailing commas, at
 * most 127 nested arrays/objects, numbers whose magnitude fits a double) and reads numbers
 * exactly as it does (integers as 64-bit integers when they fit, `-0` as a float); the writer
 * writes what serde_json writes (compact, same string escapes, shortest float form, duplicate
 * object keys merged: first position, last value).
 * ------------------------------------------------------------------------------------------- */

typedef enum weir_json_kind {
    WEIR_JSON_NULL,
    WEIR_JSON_FALSE,
    WEIR_JSON_TRUE,
    WEIR_JSON_NUMBER,
    WEIR_JSON_STRING,
    WEIR_JSON_ARRAY,
    WEIR_JSON_OBJECT,
} weir_json_kind;

#define WEIR_JSON_MAX_DEPTH 127

/* One value of a parsed document; private to the SDK. */
typedef struct weir_json_token {
    uint32_t start; /* first byte (strings: after the opening quote) */
    uint32_t end;   /* after the last byte (strings: at the closing quote) */
    uint32_t next;  /* index of the token after this value and its children */
    uint32_t count; /* arrays: elements; objects: members */
    uint8_t kind;   /* weir_json_kind */
    uint8_t flags;
} weir_json_token;

/* A parsed document. Zero-initialise; free with weir_json_free. */
typedef struct weir_json {
    const uint8_t *text;
    size_t len;
    weir_json_token *toks;
    uint32_t ntoks;
    uint32_t cap;
} weir_json;

/* A value: index of its token. The root is 0. */
typedef uint32_t weir_json_value;
#define WEIR_JSON_ROOT ((weir_json_value)0)

/* Parses `text` (one JSON value, surrounding whitespace allowed). On failure `err` gets a message
 * like serde_json's ("expected `:` at line 1 column 7"). */
int weir_json_parse(weir_json *doc, weir_bytes text, weir_error *err);
void weir_json_free(weir_json *doc);

weir_json_kind weir_json_kind_of(const weir_json *doc, weir_json_value v);
/* "null", "a boolean", "a number", "a string", "an array", "an object". */
const char *weir_json_kind_name(weir_json_kind kind);
/* Number of elements of an array or members of an object (duplicates included); 0 otherwise. */
uint32_t weir_json_count(const weir_json *doc, weir_json_value v);
/* The value's text as it is in the document (strings with their quotes). */
weir_bytes weir_json_raw(const weir_json *doc, weir_json_value v);
/* Member `name` (raw bytes, compared with the decoded keys) of object `obj`; with duplicate
 * keys, the last one (as serde_json). False when `obj` is not an object or has no such member. */
bool weir_json_get(const weir_json *doc, weir_json_value obj, const char *name, size_t name_len,
                   weir_json_value *value);
/* Iterates: `uint32_t it = 0; weir_json_value k, v; while (weir_json_member(doc, obj, &it, &k, &v))`
 * (every member, duplicates included) and likewise weir_json_element for arrays. */
bool weir_json_member(const weir_json *doc, weir_json_value obj, uint32_t *it,
                      weir_json_value *key, weir_json_value *value);
bool weir_json_element(const weir_json *doc, weir_json_value arr, uint32_t *it,
                       weir_json_value *value);
/* True when string value `s` decodes to the bytes name[0..name_len). */
bool weir_json_string_eq(const weir_json *doc, weir_json_value s, const char *name,
                         size_t name_len);
/* Appends the decoded UTF-8 of string value `s`; WEIR_ERR if it is not a string. */
int weir_json_string(const weir_json *doc, weir_json_value s, weir_buf *out);
/* The number as an integer when it is one that fits an int64 (serde_json's `as_i64`). */
bool weir_json_int64(const weir_json *doc, weir_json_value v, int64_t *out);
/* The number as a double (serde_json's `as_f64`: any number). */
bool weir_json_double(const weir_json *doc, weir_json_value v, double *out);
/* True for `true`/`false`, stored in *out. */
bool weir_json_bool(const weir_json *doc, weir_json_value v, bool *out);

/* Appends value `v` as compact JSON, exactly as serde_json would re-serialize it. */
int weir_json_write(const weir_json *doc, weir_json_value v, weir_buf *out);
/* Appends `s` as a JSON string literal, escaped as serde_json does (invalid UTF-8 is replaced
 * by U+FFFD, as String::from_utf8_lossy). */
int weir_json_write_string(weir_buf *out, const void *s, size_t len);
/* Appends a double as serde_json writes it (shortest form: `1.0`, `0.1`, `1e+30`); WEIR_ERR for
 * NaN and infinities, which JSON cannot hold. */
int weir_json_write_double(weir_buf *out, double v);

/* ---------------------------------------------------------------------------------------------
 * Logging (defined by the world glue below)
 * ------------------------------------------------------------------------------------------- */

typedef enum weir_log_level {
    WEIR_LOG_TRACE,
    WEIR_LOG_DEBUG,
    WEIR_LOG_INFO,
    WEIR_LOG_WARN,
    WEIR_LOG_ERROR,
} weir_log_level;

/* ---------------------------------------------------------------------------------------------
 * Internal interface between the world glue (macros below) and the weir*.c files
 * ------------------------------------------------------------------------------------------- */

/* An owned list handed to the host: malloc'd, or NULL when empty (the generated post-return
 * functions free only non-empty lists). */
typedef struct weir__list {
    uint8_t *ptr;
    size_t len;
} weir__list;

typedef struct weir__batch_out {
    weir__list payloads, payload_ends, keys, key_ends, times, headers, header_ends, origins;
} weir__batch_out;

bool weir__configure(weir_configure_fn fn, const uint8_t *config, size_t len, weir__list *err);
bool weir__events(const weir_columns *in, const weir_event *timer, weir_event_fn fn,
                  weir__batch_out *out, uint32_t *err_index, weir__list *err);
bool weir__agg_configure(const weir_aggregate *a, const uint8_t *config, size_t len,
                         weir__list *err);
bool weir__agg_create(const weir_aggregate *a, weir__list *ret, weir__list *err);
bool weir__agg_add(const weir_aggregate *a, weir_bytes data, weir_bytes ends, weir_bytes targets,
                   const weir_columns *in, weir__list *ret_data, weir__list *ret_ends,
                   uint32_t *err_index, weir__list *err);
/* `data`, `ends`: the accumulators; `groups`: one u32 end (an accumulator index) per group. */
bool weir__agg_merge(const weir_aggregate *a, weir_bytes data, weir_bytes ends, weir_bytes groups,
                     weir__list *ret_data, weir__list *ret_ends, uint32_t *err_index,
                     weir__list *err);
/* The packed `results` record of `finish`. */
typedef struct weir__results_out {
    weir__list payloads, payload_ends, origins;
} weir__results_out;
/* `keys`, `key_ends`, `bounds`: the `windows` record; `data`, `ends`: the accumulators. */
bool weir__agg_finish(const weir_aggregate *a, weir_bytes keys, weir_bytes key_ends,
                      weir_bytes bounds, weir_bytes data, weir_bytes ends, weir__results_out *ret,
                      uint32_t *err_index, weir__list *err);
bool weir__agg_migrate(const weir_aggregate *a, uint32_t from, weir_bytes acc, weir__list *ret,
                       weir__list *err);
/* Formats a log message as valid UTF-8 into `out`. */
void weir__log_format(weir_buf *out, const char *fmt, va_list ap);
/* A borrowed view of a generated list (any world's list<u8> or string type). */
#define WEIR__VIEW(l) ((weir_bytes){(const uint8_t *)(l).ptr, (l).len})

/* Until a world header is included, the export macros explain the include order. */
#define WEIR_EXPORT_TRANSFORM(configure, on_event)                                                 \
    _Static_assert(0, "include the generated \"transform.h\" before \"weir.h\"");
#define WEIR_EXPORT_AGGREGATE(desc)                                                                \
    _Static_assert(0, "include the generated \"aggregate.h\" before \"weir.h\"");
#define WEIR_EXPORT_PROCESS(configure, on_event, on_timer)                                         \
    _Static_assert(0, "include the generated \"process.h\" before \"weir.h\"");

#ifdef __cplusplus
}
#endif
#endif /* WEIR_H */

/* =============================================================================================
 * World glue: compiled once a generated world header (transform.h, aggregate.h or process.h)
 * has been included. It converts between the generated types and the views above, frees the
 * arguments the canonical ABI hands over (callee-owned) and defines the world's exports.
 * ============================================================================================= */
#if !defined(WEIR_GLUE_H) &&                                                                      \
    (defined(__BINDINGS_TRANSFORM_H) || defined(__BINDINGS_AGGREGATE_H) ||                        \
     defined(__BINDINGS_PROCESS_H))
#define WEIR_GLUE_H

#include <stdlib.h>

#if defined(__BINDINGS_TRANSFORM_H) + defined(__BINDINGS_AGGREGATE_H) +                          \
        defined(__BINDINGS_PROCESS_H) >                                                            \
    1
#error "include exactly one generated world header before weir.h"
#endif

#if defined(__BINDINGS_TRANSFORM_H)
typedef transform_string_t weir__wit_string;
#define weir__wit_string_free transform_string_free
#elif defined(__BINDINGS_AGGREGATE_H)
typedef aggregate_string_t weir__wit_string;
#define weir__wit_string_free aggregate_string_free
#else
typedef process_string_t weir__wit_string;
#define weir__wit_string_free process_string_free
#endif

/* Records `message` (printf format) in the host's logs at `level`. */
static inline void weir_logv(weir_log_level level, const char *fmt, va_list ap) {
    weir_buf b = {0};
    weir__log_format(&b, fmt, ap);
    weir__wit_string msg = {b.ptr, b.len};
    weir_operator_log_log((weir_operator_log_level_t)level, &msg);
    weir_buf_free(&b);
}
static inline void weir_log(weir_log_level level, const char *fmt, ...) WEIR_PRINTF(2, 3);
static inline void weir_log(weir_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir_logv(level, fmt, ap);
    va_end(ap);
}
#define weir_log_trace(...) weir_log(WEIR_LOG_TRACE, __VA_ARGS__)
#define weir_log_debug(...) weir_log(WEIR_LOG_DEBUG, __VA_ARGS__)
#define weir_log_info(...) weir_log(WEIR_LOG_INFO, __VA_ARGS__)
#define weir_log_warn(...) weir_log(WEIR_LOG_WARN, __VA_ARGS__)
#define weir_log_error(...) weir_log(WEIR_LOG_ERROR, __VA_ARGS__)

/* Generated batch record -> borrowed columns. */
#define WEIR__COLUMNS_OF(b)                                                                        \
    ((weir_columns){WEIR__VIEW((b)->payloads), WEIR__VIEW((b)->payload_ends),                      \
                    WEIR__VIEW((b)->keys), WEIR__VIEW((b)->key_ends), WEIR__VIEW((b)->times),      \
                    WEIR__VIEW((b)->headers), WEIR__VIEW((b)->header_ends),                        \
                    WEIR__VIEW((b)->origins)})
#define WEIR__MOVE(dst, src)                                                                       \
    do {                                                                                           \
        (dst).ptr = (src).ptr;                                                                     \
        (dst).len = (src).len;                                                                     \
    } while (0)
/* Owned output columns -> generated batch record (ownership passes to the canonical ABI). */
#define WEIR__SET_BATCH(ret, o)                                                                    \
    do {                                                                                           \
        WEIR__MOVE((ret)->payloads, (o).payloads);                                                 \
        WEIR__MOVE((ret)->payload_ends, (o).payload_ends);                                         \
        WEIR__MOVE((ret)->keys, (o).keys);                                                         \
        WEIR__MOVE((ret)->key_ends, (o).key_ends);                                                 \
        WEIR__MOVE((ret)->times, (o).times);                                                       \
        WEIR__MOVE((ret)->headers, (o).headers);                                                   \
        WEIR__MOVE((ret)->header_ends, (o).header_ends);                                           \
        WEIR__MOVE((ret)->origins, (o).origins);                                                   \
    } while (0)

#undef WEIR_EXPORT_TRANSFORM
#undef WEIR_EXPORT_AGGREGATE
#undef WEIR_EXPORT_PROCESS

#if defined(__BINDINGS_TRANSFORM_H)
/* Exports the `transform` world: `configure` (a weir_configure_fn, or NULL to accept any config)
 * and `on_event` (a weir_event_fn called once per input event). Use once, at file scope. */
#define WEIR_EXPORT_TRANSFORM(configure, on_event)                                                 \
    bool exports_transform_configure(transform_string_t *config, transform_string_t *err) {        \
        weir__list e = {0};                                                                        \
        bool ok = weir__configure((configure), config->ptr, config->len, &e);                      \
        transform_string_free(config);                                                             \
        WEIR__MOVE(*err, e);                                                                       \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_transform_process(transform_batch_t *input, transform_batch_t *ret,               \
                                   transform_event_error_t *err) {                                 \
        weir_columns in = WEIR__COLUMNS_OF(input);                                                 \
        weir__batch_out out = {0};                                                                 \
        weir__list msg = {0};                                                                      \
        uint32_t index = 0;                                                                        \
        bool ok = weir__events(&in, NULL, (on_event), &out, &index, &msg);                         \
        transform_batch_free(input);                                                               \
        if (ok) {                                                                                  \
            WEIR__SET_BATCH(ret, out);                                                             \
        } else {                                                                                   \
            err->index = index;                                                                    \
            WEIR__MOVE(err->message, msg);                                                         \
        }                                                                                          \
        return ok;                                                                                 \
    }
#else
#define WEIR_EXPORT_TRANSFORM(configure, on_event)                                                 \
    _Static_assert(0, "WEIR_EXPORT_TRANSFORM needs world = \"transform\" and \"transform.h\"");
#endif

#if defined(__BINDINGS_AGGREGATE_H)
/* Exports the `aggregate` world for `desc`, a `weir_aggregate` variable. Use once. */
#define WEIR_EXPORT_AGGREGATE(desc)                                                                \
    bool exports_aggregate_configure(aggregate_string_t *config, aggregate_string_t *err) {        \
        weir__list e = {0};                                                                        \
        bool ok = weir__agg_configure(&(desc), config->ptr, config->len, &e);                      \
        aggregate_string_free(config);                                                             \
        WEIR__MOVE(*err, e);                                                                       \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_aggregate_create(aggregate_list_u8_t *ret, aggregate_string_t *err) {             \
        weir__list r = {0}, e = {0};                                                               \
        bool ok = weir__agg_create(&(desc), &r, &e);                                               \
        WEIR__MOVE(*ret, r);                                                                       \
        WEIR__MOVE(*err, e);                                                                       \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_aggregate_add(aggregate_accumulators_t *accs, aggregate_list_u8_t *targets,       \
                               aggregate_batch_t *input, aggregate_accumulators_t *ret,            \
                               aggregate_event_error_t *err) {                                     \
        weir_columns in = WEIR__COLUMNS_OF(input);                                                 \
        weir__list data = {0}, ends = {0}, msg = {0};                                              \
        uint32_t index = 0;                                                                        \
        bool ok = weir__agg_add(&(desc), WEIR__VIEW(accs->data), WEIR__VIEW(accs->ends),           \
                                WEIR__VIEW(*targets), &in, &data, &ends, &index, &msg);            \
        aggregate_accumulators_free(accs);                                                         \
        aggregate_list_u8_free(targets);                                                           \
        aggregate_batch_free(input);                                                               \
        if (ok) {                                                                                  \
            WEIR__MOVE(ret->data, data);                                                           \
            WEIR__MOVE(ret->ends, ends);                                                           \
        } else {                                                                                   \
            err->index = index;                                                                    \
            WEIR__MOVE(err->message, msg);                                                         \
        }                                                                                          \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_aggregate_merge(aggregate_accumulators_t *accs, aggregate_list_u8_t *groups,      \
                                 aggregate_accumulators_t *ret, aggregate_window_error_t *err) {   \
        weir__list data = {0}, ends = {0}, msg = {0};                                              \
        uint32_t index = 0;                                                                        \
        bool ok = weir__agg_merge(&(desc), WEIR__VIEW(accs->data), WEIR__VIEW(accs->ends),         \
                                  WEIR__VIEW(*groups), &data, &ends, &index, &msg);                \
        aggregate_accumulators_free(accs);                                                         \
        aggregate_list_u8_free(groups);                                                            \
        if (ok) {                                                                                  \
            WEIR__MOVE(ret->data, data);                                                           \
            WEIR__MOVE(ret->ends, ends);                                                           \
        } else {                                                                                   \
            err->index = index;                                                                    \
            WEIR__MOVE(err->message, msg);                                                         \
        }                                                                                          \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_aggregate_finish(aggregate_windows_t *windows, aggregate_accumulators_t *accs,    \
                                  aggregate_results_t *ret, aggregate_window_error_t *err) {       \
        weir__results_out out = {{NULL, 0}, {NULL, 0}, {NULL, 0}};                                 \
        weir__list msg = {0};                                                                      \
        uint32_t index = 0;                                                                        \
        bool ok = weir__agg_finish(&(desc), WEIR__VIEW(windows->keys),                             \
                                   WEIR__VIEW(windows->key_ends), WEIR__VIEW(windows->bounds),     \
                                   WEIR__VIEW(accs->data), WEIR__VIEW(accs->ends), &out, &index,   \
                                   &msg);                                                          \
        aggregate_windows_free(windows);                                                           \
        aggregate_accumulators_free(accs);                                                         \
        if (ok) {                                                                                  \
            WEIR__MOVE(ret->payloads, out.payloads);                                               \
            WEIR__MOVE(ret->payload_ends, out.payload_ends);                                       \
            WEIR__MOVE(ret->origins, out.origins);                                                 \
        } else {                                                                                   \
            err->index = index;                                                                    \
            WEIR__MOVE(err->message, msg);                                                         \
        }                                                                                          \
        return ok;                                                                                 \
    }                                                                                              \
    uint32_t exports_aggregate_state_version(void) { return (desc).state_version; }                \
    bool exports_aggregate_migrate(uint32_t version, aggregate_list_u8_t *acc,                     \
                                   aggregate_list_u8_t *ret, aggregate_string_t *err) {            \
        weir__list r = {0}, e = {0};                                                               \
        bool ok = weir__agg_migrate(&(desc), version, WEIR__VIEW(*acc), &r, &e);                   \
        aggregate_list_u8_free(acc);                                                               \
        WEIR__MOVE(*ret, r);                                                                       \
        WEIR__MOVE(*err, e);                                                                       \
        return ok;                                                                                 \
    }
#else
#define WEIR_EXPORT_AGGREGATE(desc)                                                                \
    _Static_assert(0, "WEIR_EXPORT_AGGREGATE needs world = \"aggregate\" and \"aggregate.h\"");
#endif

#if defined(__BINDINGS_PROCESS_H)
/* Keyed state of the current key (`process` world only). Names must be UTF-8. */

/* Replaces `out`'s content by state `name`; returns 1 when present, 0 when absent, -1 when out
 * of memory. */
static inline int weir_state_get(const char *name, weir_buf *out) {
    process_string_t n = {(uint8_t *)(uintptr_t)name, 0};
    process_list_u8_t value = {0};
    const char *p = name;
    while (*p) p++;
    n.len = (size_t)(p - name);
    if (!weir_operator_keyed_get(&n, &value)) return 0;
    weir_buf_clear(out);
    int rc = weir_buf_append(out, value.ptr, value.len);
    process_list_u8_free(&value);
    return rc == WEIR_OK ? 1 : -1;
}
/* Sets state `name` to `len` bytes at `value`. */
static inline void weir_state_set(const char *name, const void *value, size_t len) {
    process_string_t n = {(uint8_t *)(uintptr_t)name, 0};
    const char *p = name;
    while (*p) p++;
    n.len = (size_t)(p - name);
    process_list_u8_t v = {(uint8_t *)(uintptr_t)value, len};
    weir_operator_keyed_set(&n, &v);
}
static inline void weir_state_delete(const char *name) {
    process_string_t n = {(uint8_t *)(uintptr_t)name, 0};
    const char *p = name;
    while (*p) p++;
    n.len = (size_t)(p - name);
    weir_operator_keyed_delete(&n);
}
/* Calls `on_timer` for the current key once the watermark reaches `time` (event time, ms). */
static inline void weir_timer_register(int64_t time) {
    weir_operator_keyed_register_event_timer(time);
}
static inline void weir_timer_delete(int64_t time) { weir_operator_keyed_delete_event_timer(time); }
/* Calls `on_timer` for the current key once the host's wall clock reaches `time` (processing
 * time, ms since the Unix epoch; see `weir_processing_time`). */
static inline void weir_timer_register_processing(int64_t time) {
    weir_operator_keyed_register_processing_timer(time);
}
static inline void weir_timer_delete_processing(int64_t time) {
    weir_operator_keyed_delete_processing_timer(time);
}
/* The host's processing time now (ms since the Unix epoch; never moves back). */
static inline int64_t weir_processing_time(void) {
    return weir_operator_keyed_current_processing_time();
}
/* In `on_timer`: whether the timer that fired is a processing-time one (else event time). */
static inline bool weir_timer_is_processing(void) {
    return weir_operator_keyed_timer_domain() == WEIR_OPERATOR_KEYED_TIME_DOMAIN_PROCESSING_TIME;
}

/* Exports the `process` world: `configure` (or NULL), `on_event` called once per event of the
 * key (state functions act on that key), `on_timer` (or NULL) once per fired timer, with a
 * pseudo-event holding the timer's key and time (what it emits gets them too). */
#define WEIR_EXPORT_PROCESS(configure, on_event, on_timer)                                         \
    bool exports_process_configure(process_string_t *config, process_string_t *err) {              \
        weir__list e = {0};                                                                        \
        bool ok = weir__configure((configure), config->ptr, config->len, &e);                      \
        process_string_free(config);                                                               \
        WEIR__MOVE(*err, e);                                                                       \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_process_on_events(process_list_u8_t *key, process_batch_t *input,                 \
                                   process_batch_t *ret, process_event_error_t *err) {             \
        weir_columns in = WEIR__COLUMNS_OF(input);                                                 \
        weir__batch_out out = {0};                                                                 \
        weir__list msg = {0};                                                                      \
        uint32_t index = 0;                                                                        \
        bool ok = weir__events(&in, NULL, (on_event), &out, &index, &msg);                         \
        process_list_u8_free(key);                                                                 \
        process_batch_free(input);                                                                 \
        if (ok) {                                                                                  \
            WEIR__SET_BATCH(ret, out);                                                             \
        } else {                                                                                   \
            err->index = index;                                                                    \
            WEIR__MOVE(err->message, msg);                                                         \
        }                                                                                          \
        return ok;                                                                                 \
    }                                                                                              \
    bool exports_process_on_timer(process_list_u8_t *key, int64_t time, process_batch_t *ret,      \
                                  process_string_t *err) {                                         \
        weir_event timer = {WEIR__VIEW(*key), time, {NULL, 0}, {NULL, 0}, 0};                      \
        weir__batch_out out = {0};                                                                 \
        weir__list msg = {0};                                                                      \
        uint32_t index = 0;                                                                        \
        bool ok = weir__events(NULL, &timer, (on_timer), &out, &index, &msg);                      \
        process_list_u8_free(key);                                                                 \
        if (ok) {                                                                                  \
            WEIR__SET_BATCH(ret, out);                                                             \
        } else {                                                                                   \
            WEIR__MOVE(*err, msg);                                                                 \
        }                                                                                          \
        return ok;                                                                                 \
    }
#else
#define WEIR_EXPORT_PROCESS(configure, on_event, on_timer)                                         \
    _Static_assert(0, "WEIR_EXPORT_PROCESS needs world = \"process\" and \"process.h\"");
#endif

#endif /* world glue */
