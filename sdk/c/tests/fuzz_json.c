/* fuzz_json.c — a libFuzzer target for the C SDK's untrusted-input paths: the JSON reader and
 * writer (whatever parses must write back into JSON that parses and writes back identically),
 * the UTF-8 repairing string writer, packed batch validation and header iteration. Built and run
 * by sdk/c/tests/run.sh --fuzz SECONDS (needs clang with libFuzzer, ASan and UBSan). */
#include "weir.h"

#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

static void json_roundtrip(const uint8_t *data, size_t size) {
    static weir_json doc, again;
    weir_error err = {0};
    weir_buf out = {0}, out2 = {0};
    if (weir_json_parse(&doc, (weir_bytes){data, size}, &err) == WEIR_OK) {
        REQUIRE(weir_json_write(&doc, WEIR_JSON_ROOT, &out) == WEIR_OK);
        REQUIRE(weir_utf8_valid(out.ptr, out.len));
        REQUIRE(weir_json_parse(&again, weir_buf_view(&out), &err) == WEIR_OK);
        REQUIRE(weir_json_write(&again, WEIR_JSON_ROOT, &out2) == WEIR_OK);
        /* Writing is idempotent, except for floats: serde_json's reader (which weir's copies)
         * is not correctly rounded, so a float written and read again may move by one ulp. */
        bool has_float = false;
        for (uint32_t v = 0; v < doc.ntoks; v++) {
            weir_bytes raw = weir_json_raw(&doc, v);
            if (weir_json_kind_of(&doc, v) == WEIR_JSON_NUMBER &&
                (memchr(raw.ptr, '.', raw.len) || memchr(raw.ptr, 'e', raw.len) ||
                 memchr(raw.ptr, 'E', raw.len) || raw.len > 19))
                has_float = true;
        }
        REQUIRE(has_float || (out.len == out2.len && memcmp(out.ptr, out2.ptr, out.len) == 0));
        /* Every accessor on every value stays in bounds. */
        for (uint32_t v = 0; v < doc.ntoks; v++) {
            int64_t i;
            double d;
            bool b;
            weir_json_value k, x;
            weir_buf s = {0};
            (void)weir_json_int64(&doc, v, &i);
            (void)weir_json_double(&doc, v, &d);
            (void)weir_json_bool(&doc, v, &b);
            (void)weir_json_string(&doc, v, &s);
            (void)weir_json_get(&doc, v, "a", 1, &x);
            uint32_t it = 0;
            while (weir_json_member(&doc, v, &it, &k, &x)) {}
            it = 0;
            while (weir_json_element(&doc, v, &it, &x)) {}
            weir_buf_free(&s);
        }
    } else {
        REQUIRE(err.msg != NULL);
    }
    weir_error_free(&err);
    weir_buf_free(&out);
    weir_buf_free(&out2);
}

static void string_writer(const uint8_t *data, size_t size) {
    static weir_json doc;
    weir_buf out = {0};
    weir_error err = {0};
    weir_json_write_string(&out, data, size);
    REQUIRE(weir_json_parse(&doc, weir_buf_view(&out), &err) == WEIR_OK);
    REQUIRE(weir_json_kind_of(&doc, WEIR_JSON_ROOT) == WEIR_JSON_STRING);
    weir_buf_free(&out);
}

/* Splits the input into eight columns by its first bytes and validates them as a batch. */
static void batch_views(const uint8_t *data, size_t size) {
    if (size < 8) return;
    weir_bytes parts[8];
    const uint8_t *p = data + 8;
    size_t rest = size - 8;
    for (int i = 0; i < 8; i++) {
        size_t n = rest ? data[i] % (rest + 1) : 0;
        parts[i] = (weir_bytes){p, n};
        p += n;
        rest -= n;
    }
    weir_columns c = {parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7]};
    weir_batch b;
    weir_error err = {0};
    if (weir_batch_open(&b, &c, &err) == WEIR_OK) {
        for (uint32_t i = 0; i < b.len; i++) {
            weir_event e = weir_batch_get(&b, i);
            weir_header_iter it = weir_headers(&e);
            weir_bytes n, v;
            while (weir_header_next(&it, &n, &v)) {}
        }
    }
    weir_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_roundtrip(data, size);
    string_writer(data, size);
    batch_views(data, size);
    return 0;
}
