/* weir_test.c — native unit tests of the world-independent C SDK (weir.c): JSON reading and
 * writing as serde_json does it, UTF-8 repair, packed batches, the output builder and the
 * per-event and aggregate loops (`add`, and the batched `merge` and `finish`). Run with
 * sdk/c/tests/run.sh (address and UB sanitizers on).
 * The kit's byte-for-byte agreement with the Rust operators is tested end to end instead
 * (sdk/c/README.md, "Testing"). */
#include "weir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static weir_bytes B(const char *s) { return weir_cstr(s); }

static bool buf_is(const weir_buf *b, const char *s) {
    return b->len == strlen(s) && memcmp(b->ptr, s, b->len) == 0;
}

/* Parses `in`, writes it back compactly and compares with `want` (NULL: must not parse). */
static void roundtrip(const char *in, const char *want) {
    weir_json doc = {0};
    weir_error err = {0};
    weir_buf out = {0};
    int rc = weir_json_parse(&doc, B(in), &err);
    if (want == NULL) {
        if (rc == WEIR_OK) fprintf(stderr, "accepted but should not: %s\n", in);
        CHECK(rc != WEIR_OK);
        CHECK(err.msg != NULL);
    } else {
        if (rc != WEIR_OK) fprintf(stderr, "refused %s: %s\n", in, err.msg);
        CHECK(rc == WEIR_OK);
        if (rc == WEIR_OK) {
            weir_json_write(&doc, WEIR_JSON_ROOT, &out);
            if (!buf_is(&out, want))
                fprintf(stderr, "%s -> %.*s, want %s\n", in, (int)out.len, out.ptr, want);
            CHECK(buf_is(&out, want));
        }
    }
    weir_buf_free(&out);
    weir_error_free(&err);
    weir_json_free(&doc);
}

static void json_writes_what_serde_json_writes(void) {
    roundtrip(" { \"a\" : [ 1 , 2 ] ,\n\"b\":{} } ", "{\"a\":[1,2],\"b\":{}}");
    roundtrip("{\"s\":\"\\u00e9\\/\\b\\u001f\\u007f\"}", "{\"s\":\"é/\\b\\u001f\x7f\"}");
    roundtrip("\"\\ud83d\\ude00\"", "\"😀\"");
    roundtrip("-0", "-0.0");
    roundtrip("1E2", "100.0");
    roundtrip("0.1", "0.1");
    roundtrip("1e-7", "1e-7");
    roundtrip("1e16", "1e+16");
    roundtrip("123456789012345678901234567890", "1.2345678901234568e+29");
    roundtrip("18446744073709551615", "18446744073709551615");
    roundtrip("-9223372036854775808", "-9223372036854775808");
    roundtrip("-9223372036854775809", "-9.223372036854776e+18");
    roundtrip("1e-400", "0.0");
    roundtrip("{\"k\":1,\"j\":2,\"k\":3}", "{\"k\":3,\"j\":2}");
    roundtrip("{\"\\u006b\":1,\"k\":2}", "{\"k\":2}");
    roundtrip("[true,false,null]", "[true,false,null]");
}

static void json_refuses_what_serde_json_refuses(void) {
    const char *bad[] = {"", " ", "{", "{\"a\"}", "{\"a\":1,}", "[1,]", "01", "1.", "-", "+1",
                         ".5", "1e", "tru", "nul", "[1] x", "\"\\ud800\"", "\"\\udc00\"",
                         "\"\\ud800\\u0041\"", "\"\\x\"", "\"a\nb\"", "\"\xff\"", "\"\xed\xa0\x80\"",
                         "1e400", "-1e400", "NaN", "{1:2}", "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) roundtrip(bad[i], NULL);
    /* 127 nested containers are fine, 128 are not (serde_json's recursion limit). */
    char deep[300];
    for (int d = 127; d <= 128; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        deep[2 * d] = 0;
        weir_json doc = {0};
        weir_error err = {0};
        CHECK((weir_json_parse(&doc, B(deep), &err) == WEIR_OK) == (d == 127));
        weir_error_free(&err);
        weir_json_free(&doc);
    }
}

static void json_error_names_line_and_column(void) {
    weir_json doc = {0};
    weir_error err = {0};
    CHECK(weir_json_parse(&doc, B("not json {"), &err) != WEIR_OK);
    CHECK(err.msg && strcmp(err.msg, "expected ident at line 1 column 2") == 0);
    weir_error_free(&err);
    CHECK(weir_json_parse(&doc, B("{\n\"a\" 1}"), &err) != WEIR_OK);
    CHECK(err.msg && strcmp(err.msg, "expected `:` at line 2 column 5") == 0);
    weir_error_free(&err);
    weir_json_free(&doc);
}

static void json_get_reads_numbers_like_serde_json(void) {
    weir_json doc = {0};
    weir_error err = {0};
    const char *text = "{\"a\":5,\"big\":18446744073709551615,\"f\":2.5,\"neg\":-3,\"s\":\"x\","
                       "\"a\":7,\"e\":\"\\u0041\"}";
    CHECK(weir_json_parse(&doc, B(text), &err) == WEIR_OK);
    weir_json_value v;
    int64_t i;
    double d;
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "a", 1, &v) && weir_json_int64(&doc, v, &i) && i == 7);
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "big", 3, &v) && !weir_json_int64(&doc, v, &i));
    CHECK(weir_json_double(&doc, v, &d) && d == 18446744073709551615.0);
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "f", 1, &v) && !weir_json_int64(&doc, v, &i));
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "neg", 3, &v) && weir_json_int64(&doc, v, &i) && i == -3);
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "s", 1, &v) && !weir_json_double(&doc, v, &d));
    CHECK(!weir_json_get(&doc, WEIR_JSON_ROOT, "missing", 7, &v));
    CHECK(weir_json_get(&doc, WEIR_JSON_ROOT, "e", 1, &v) && weir_json_string_eq(&doc, v, "A", 1));
    CHECK(weir_json_count(&doc, WEIR_JSON_ROOT) == 7);
    weir_json_free(&doc);
}

static void strings_are_escaped_and_repaired_like_rust(void) {
    weir_buf out = {0};
    /* Truncated sequence, lone continuation, overlong, surrogate: one U+FFFD per maximal
     * invalid prefix (String::from_utf8_lossy). */
    static const char bad[] = "a\xe2\x82" "b\x80" "c\xc0\xaf" "d\xed\xa0\x80\"\\\n\x01";
    weir_json_write_string(&out, bad, sizeof bad - 1);
    CHECK(buf_is(&out, "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD"
                       "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\\\"\\\\\\n\\u0001\""));
    CHECK(weir_utf8_valid("é😀", strlen("é😀")));
    CHECK(!weir_utf8_valid("\xf4\x90\x80\x80", 4));
    weir_buf_free(&out);
}

static void doubles_use_the_shortest_form(void) {
    struct {
        double v;
        const char *want;
    } cases[] = {{1.0, "1.0"},     {0.1, "0.1"},       {1e15, "1000000000000000.0"},
                 {1e16, "1e+16"},  {1e-5, "0.00001"},  {1.5e-7, "1.5e-7"},
                 {5e-324, "5e-324"}, {-2.5, "-2.5"},   {1.7976931348623157e308, "1.7976931348623157e+308"},
                 {7.120236347223045e-307, "7.120236347223045e-307"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        weir_buf out = {0};
        CHECK(weir_json_write_double(&out, cases[i].v) == WEIR_OK);
        if (!buf_is(&out, cases[i].want))
            fprintf(stderr, "%.17g -> %.*s, want %s\n", cases[i].v, (int)out.len, out.ptr, cases[i].want);
        CHECK(buf_is(&out, cases[i].want));
        weir_buf_free(&out);
    }
}

/* A packed batch of `n` events k<i>/p<i>, time i, header h=v on even events. */
static void make_batch(weir_builder *b, uint32_t n) {
    weir_buf h = {0};
    weir_headers_push(&h, B("h"), B("v"));
    for (uint32_t i = 0; i < n; i++) {
        char k[16], p[16];
        snprintf(k, sizeof k, "k%u", i);
        snprintf(p, sizeof p, "p%u", i);
        weir_bytes hdr = i % 2 == 0 ? weir_buf_view(&h) : B("");
        CHECK(weir_builder_push(b, B(k), i, hdr, B(p), i) == WEIR_OK);
    }
    weir_buf_free(&h);
}

static weir_columns columns_of(const weir_builder *b) {
    weir_columns c = {weir_buf_view(&b->payloads), weir_buf_view(&b->payload_ends),
                      weir_buf_view(&b->keys),     weir_buf_view(&b->key_ends),
                      weir_buf_view(&b->times),    weir_buf_view(&b->headers),
                      weir_buf_view(&b->header_ends), weir_buf_view(&b->origins)};
    return c;
}

static void batches_read_back_and_malformed_ones_are_refused(void) {
    weir_builder b = {0};
    make_batch(&b, 3);
    weir_columns c = columns_of(&b);
    weir_batch in;
    weir_error err = {0};
    CHECK(weir_batch_open(&in, &c, &err) == WEIR_OK && in.len == 3);
    weir_event e = weir_batch_get(&in, 2);
    weir_bytes v;
    CHECK(weir_bytes_eq(e.key, "k2") && weir_bytes_eq(e.payload, "p2") && e.time == 2);
    CHECK(weir_event_header(&e, "h", &v) && weir_bytes_eq(v, "v"));
    CHECK(!weir_event_header(&e, "x", &v));
    c.payloads.len--;
    CHECK(weir_batch_open(&in, &c, &err) != WEIR_OK && strstr(err.msg, "payload-ends"));
    c = columns_of(&b);
    c.times.len = 7;
    CHECK(weir_batch_open(&in, &c, &err) != WEIR_OK && strstr(err.msg, "times"));
    weir_error_free(&err);
    /* Truncated headers end the iteration and are reported. */
    weir_event t = {0};
    t.headers = (weir_bytes){(const uint8_t *)"\x05\x00\x00\x00ab", 6};
    weir_header_iter it = weir_headers(&t);
    weir_bytes n;
    CHECK(!weir_header_next(&it, &n, &v) && it.malformed);
    weir_builder_free(&b);
}

/* Keeps odd events, forwards them, adds a copy with a new payload for events divisible by 3. */
static int odd_and_thirds(const weir_event *e, weir_output *out, weir_error *err) {
    if (e->time == 4) return weir_fail(err, "event %u is bad", e->index);
    if (e->time % 2 == 1) weir_forward(out);
    if (e->time % 3 == 0) {
        weir_buf *p = weir_emit_begin(out);
        weir_buf_printf(p, "third %lld", (long long)e->time);
        weir_emit_commit_as(out, B("new"), e->time * 10, B(""));
    }
    if (e->time == 5) {
        weir_buf *p = weir_emit_begin(out);
        weir_buf_append_str(p, "abandoned");
    }
    return WEIR_OK;
}

static void configure_ok(weir_configure_fn fn) {
    weir__list err = {0};
    CHECK(weir__configure(fn, (const uint8_t *)"{}", 2, &err));
}

static void event_loop_keeps_order_origins_and_reports_the_failing_index(void) {
    weir_builder b = {0};
    make_batch(&b, 4);
    weir_columns c = columns_of(&b);
    weir__batch_out out = {0};
    weir__list msg = {0};
    uint32_t index = 99;
    configure_ok(NULL);
    CHECK(weir__events(&c, NULL, odd_and_thirds, &out, &index, &msg));
    /* Outputs: third 0 (origin 0), k1 forwarded (1), k3 forwarded (3), third 3 (3). */
    weir_columns oc = {{out.payloads.ptr, out.payloads.len}, {out.payload_ends.ptr, out.payload_ends.len},
                       {out.keys.ptr, out.keys.len}, {out.key_ends.ptr, out.key_ends.len},
                       {out.times.ptr, out.times.len}, {out.headers.ptr, out.headers.len},
                       {out.header_ends.ptr, out.header_ends.len}, {out.origins.ptr, out.origins.len}};
    weir_batch ob;
    weir_error err = {0};
    CHECK(weir_batch_open(&ob, &oc, &err) == WEIR_OK && ob.len == 4);
    weir_event e0 = weir_batch_get(&ob, 0), e1 = weir_batch_get(&ob, 1),
               e2 = weir_batch_get(&ob, 2), e3 = weir_batch_get(&ob, 3);
    CHECK(weir_bytes_eq(e0.payload, "third 0") && weir_bytes_eq(e0.key, "new") && e0.time == 0);
    CHECK(weir_bytes_eq(e1.payload, "p1") && weir_bytes_eq(e1.key, "k1") && e1.headers.len == 0);
    CHECK(weir_bytes_eq(e2.payload, "p3") && weir_bytes_eq(e3.payload, "third 3") && e3.time == 30);
    CHECK(out.origins.len == 16 && memcmp(out.origins.ptr, "\0\0\0\0\1\0\0\0\3\0\0\0\3\0\0\0", 16) == 0);
    free(out.payloads.ptr), free(out.payload_ends.ptr), free(out.keys.ptr), free(out.key_ends.ptr);
    free(out.times.ptr), free(out.headers.ptr), free(out.header_ends.ptr), free(out.origins.ptr);
    weir_builder_free(&b);

    /* Event 4 fails: an error naming index 4 and no output. Event 5's unfinished payload is
     * dropped. */
    memset(&b, 0, sizeof b);
    make_batch(&b, 6);
    c = columns_of(&b);
    memset(&out, 0, sizeof out);
    CHECK(!weir__events(&c, NULL, odd_and_thirds, &out, &index, &msg));
    CHECK(index == 4 && msg.len == strlen("event 4 is bad") && memcmp(msg.ptr, "event 4 is bad", msg.len) == 0);
    CHECK(out.payloads.ptr == NULL);
    free(msg.ptr);
    weir_builder_free(&b);
}

typedef struct counter {
    uint64_t n;
    int64_t sum;
} counter;

static int count_add(weir_buf *acc, const weir_event *e, weir_error *err) {
    if (e->time < 0) return weir_fail(err, "negative");
    WEIR_ACC(acc, counter)->n++;
    WEIR_ACC(acc, counter)->sum += e->time;
    return WEIR_OK;
}

static int count_merge(weir_buf *acc, const weir_buf *other, weir_error *err) {
    (void)err;
    WEIR_ACC(acc, counter)->n += WEIR_ACC(other, const counter)->n;
    return WEIR_OK;
}

static int count_finish(weir_bytes key, weir_window w, const weir_buf *acc, weir_results *out,
                        weir_error *err) {
    (void)key, (void)w, (void)err;
    weir_buf *p = weir_result_add(out);
    return weir_buf_printf(p, "%llu", (unsigned long long)WEIR_ACC(acc, const counter)->n);
}

static void put_u32(weir_buf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    weir_buf_append(b, le, 4);
}

static void put_i64(weir_buf *b, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) weir_buf_push(b, (uint8_t)(u >> (8 * i)));
}

/* A packed `windows` record and its accumulators (counter structs; n < 0: stored empty). */
typedef struct windows_in {
    weir_buf keys, key_ends, bounds, data, ends;
} windows_in;

static void window_push(windows_in *w, const char *key, int64_t start, int64_t end, int64_t n,
                        int64_t sum) {
    weir_buf_append_str(&w->keys, key);
    put_u32(&w->key_ends, (uint32_t)w->keys.len);
    put_i64(&w->bounds, start);
    put_i64(&w->bounds, end);
    if (n >= 0) {
        counter c = {(uint64_t)n, sum};
        weir_buf_append(&w->data, &c, sizeof c);
    }
    put_u32(&w->ends, (uint32_t)w->data.len);
}

static void windows_free(windows_in *w) {
    weir_buf_free(&w->keys), weir_buf_free(&w->key_ends), weir_buf_free(&w->bounds);
    weir_buf_free(&w->data), weir_buf_free(&w->ends);
}

static bool finish_windows(const weir_aggregate *agg, const windows_in *w, weir__results_out *out,
                           uint32_t *index, weir__list *msg) {
    return weir__agg_finish(agg, weir_buf_view(&w->keys), weir_buf_view(&w->key_ends),
                            weir_buf_view(&w->bounds), weir_buf_view(&w->data),
                            weir_buf_view(&w->ends), out, index, msg);
}

static bool list_is(weir__list l, const char *s) {
    return l.len == strlen(s) && (l.len == 0 || memcmp(l.ptr, s, l.len) == 0);
}

/* `n` payloads "<key>[start,end)#j", alternating weir_result_add and weir_result_push (key "d":
 * weir_result_add only); key "dup" re-pushes the payload just added (from the SDK's own
 * buffer); sum -1 fails with a message, -2 without. */
static int multi_finish(weir_bytes key, weir_window w, const weir_buf *acc, weir_results *out,
                        weir_error *err) {
    const counter *c = WEIR_ACC(acc, const counter);
    if (c->sum == -1) return weir_fail(err, "window [%lld,%lld) is bad", (long long)w.start,
                                       (long long)w.end);
    if (c->sum == -2) return WEIR_ERR;
    for (uint64_t j = 0; j < c->n; j++) {
        char t[64];
        int len = snprintf(t, sizeof t, "%.*s[%lld,%lld)#%llu", (int)key.len, (const char *)key.ptr,
                           (long long)w.start, (long long)w.end, (unsigned long long)j);
        if (j % 2 == 0 || weir_bytes_eq(key, "d")) {
            weir_buf *p = weir_result_add(out);
            if (weir_buf_append(p, t, (size_t)len) != WEIR_OK) return WEIR_ERR;
            if (weir_bytes_eq(key, "dup") && weir_result_push(out, p->ptr, p->len) != WEIR_OK)
                return WEIR_ERR;
        } else if (weir_result_push(out, t, (size_t)len) != WEIR_OK) {
            return WEIR_ERR;
        }
    }
    return WEIR_OK;
}

static void aggregate_finish_packs_the_results_of_every_window(void) {
    static const weir_aggregate agg = {.acc_size = sizeof(counter), .add = count_add,
                                       .finish = multi_finish};
    windows_in w = {0};
    window_push(&w, "a", 0, 10, 2, 0);    /* two payloads */
    window_push(&w, "", 10, 20, 1, 0);    /* no key */
    window_push(&w, "e", 10, 20, -1, 0);  /* stored empty: a new (zero) counter, no payload */
    window_push(&w, "ccc", -5, 5, 1, 0);  /* one */
    window_push(&w, "d", 20, 30, 3, 0);   /* three */
    window_push(&w, "dup", 30, 40, 1, 0); /* one added, pushed again */
    weir__results_out out = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    weir__list msg = {0};
    uint32_t index = 99;
    configure_ok(NULL);
    CHECK(finish_windows(&agg, &w, &out, &index, &msg));
    const char *want[] = {"a[0,10)#0",  "a[0,10)#1",  "[10,20)#0",    "ccc[-5,5)#0", "d[20,30)#0",
                          "d[20,30)#1", "d[20,30)#2", "dup[30,40)#0", "dup[30,40)#0"};
    const uint32_t origins[] = {0, 0, 1, 3, 4, 4, 4, 5, 5};
    size_t n = sizeof want / sizeof *want;
    CHECK(out.payload_ends.len == 4 * n && out.origins.len == 4 * n);
    if (out.payload_ends.len == 4 * n && out.origins.len == 4 * n) {
        uint32_t start = 0;
        for (size_t j = 0; j < n; j++) {
            uint32_t end, origin;
            memcpy(&end, out.payload_ends.ptr + 4 * j, 4);
            memcpy(&origin, out.origins.ptr + 4 * j, 4);
            CHECK(start <= end && end <= out.payloads.len);
            weir__list p = {out.payloads.ptr + start, end - start};
            if (!list_is(p, want[j]) || origin != origins[j])
                fprintf(stderr, "payload %zu: %.*s (origin %u), want %s (origin %u)\n", j,
                        (int)p.len, (const char *)p.ptr, origin, want[j], origins[j]);
            CHECK(list_is(p, want[j]) && origin == origins[j]);
            start = end;
        }
        CHECK(start == out.payloads.len);
    }
    free(out.payloads.ptr), free(out.payload_ends.ptr), free(out.origins.ptr);

    /* No window, and windows without payloads: empty results. */
    windows_in none = {0};
    memset(&out, 0, sizeof out);
    CHECK(finish_windows(&agg, &none, &out, &index, &msg));
    CHECK(out.payloads.ptr == NULL && out.payload_ends.ptr == NULL && out.origins.ptr == NULL);
    window_push(&none, "", 0, 1, 0, 0);
    window_push(&none, "x", 0, 1, -1, 0);
    CHECK(finish_windows(&agg, &none, &out, &index, &msg));
    CHECK(out.payloads.ptr == NULL && out.payload_ends.ptr == NULL && out.origins.ptr == NULL);
    windows_free(&none);

    /* The middle window fails: its index and message, nothing else. */
    windows_in bad = {0};
    window_push(&bad, "a", 0, 10, 2, 0);
    window_push(&bad, "b", 10, 20, 1, -1);
    window_push(&bad, "c", 20, 30, 1, 0);
    CHECK(!finish_windows(&agg, &bad, &out, &index, &msg));
    CHECK(index == 1 && list_is(msg, "window [10,20) is bad"));
    free(msg.ptr);
    windows_free(&bad);
    /* Failing without a message; an accumulator of the wrong size. */
    memset(&bad, 0, sizeof bad);
    window_push(&bad, "a", 0, 10, 0, 0);
    window_push(&bad, "b", 0, 10, 0, 0);
    window_push(&bad, "c", 0, 10, 1, -2);
    CHECK(!finish_windows(&agg, &bad, &out, &index, &msg));
    CHECK(index == 2 && list_is(msg, "`finish` failed (no message given)"));
    free(msg.ptr);
    bad.data.len--;
    ((uint8_t *)bad.ends.ptr)[8]--;
    CHECK(!finish_windows(&agg, &bad, &out, &index, &msg));
    CHECK(index == 2 && msg.ptr && strstr((const char *)msg.ptr, "cannot decode accumulator") != NULL);
    free(msg.ptr);
    windows_free(&bad);

    /* Malformed calls name window 0. */
    w.bounds.len -= 16;
    CHECK(!finish_windows(&agg, &w, &out, &index, &msg));
    CHECK(index == 0 && list_is(msg, "6 windows came with 6 accumulators and 80 bytes of bounds"));
    free(msg.ptr);
    w.bounds.len += 16;
    w.key_ends.ptr[4] = 0; /* window 1's key ends before window 0's */
    CHECK(!finish_windows(&agg, &w, &out, &index, &msg));
    CHECK(index == 0 && list_is(msg, "malformed windows: end offset 1 is out of order or bounds"));
    free(msg.ptr);
    w.key_ends.ptr[4] = 1;
    w.ends.len--;
    CHECK(!finish_windows(&agg, &w, &out, &index, &msg));
    CHECK(index == 0 && list_is(msg, "malformed accumulators: `ends` is not a u32 list"));
    free(msg.ptr);
    windows_free(&w);
}

static void aggregate_add_updates_only_targeted_accumulators(void) {
    static const weir_aggregate agg = {.acc_size = sizeof(counter), .add = count_add,
                                       .merge = count_merge, .finish = count_finish};
    weir_builder b = {0};
    make_batch(&b, 3); /* times 0, 1, 2 */
    weir_columns c = columns_of(&b);
    /* Accumulator 0: empty (new); 1: 3 bytes (wrong size, untouched); 2: n=5. */
    counter five = {5, 50};
    uint8_t data[3 + sizeof five];
    memcpy(data, "xyz", 3);
    memcpy(data + 3, &five, sizeof five);
    uint8_t ends[12] = {0, 0, 0, 0, 3, 0, 0, 0, (uint8_t)(3 + sizeof five), 0, 0, 0};
    uint8_t targets[12] = {2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0};
    weir__list rd = {0}, re = {0}, msg = {0};
    uint32_t index;
    configure_ok(NULL);
    CHECK(weir__agg_add(&agg, (weir_bytes){data, sizeof data}, (weir_bytes){ends, 12},
                        (weir_bytes){targets, 12}, &c, &rd, &re, &index, &msg));
    CHECK(re.len == 12 && rd.len == sizeof(counter) + 3 + sizeof(counter));
    counter a0, a2;
    memcpy(&a0, rd.ptr, sizeof a0);
    memcpy(&a2, rd.ptr + sizeof a0 + 3, sizeof a2);
    CHECK(a0.n == 1 && a0.sum == 1 && a2.n == 7 && a2.sum == 52);
    CHECK(memcmp(rd.ptr + sizeof a0, "xyz", 3) == 0);
    free(rd.ptr), free(re.ptr);
    /* Targeting the malformed accumulator fails at that event. */
    targets[4] = 1;
    CHECK(!weir__agg_add(&agg, (weir_bytes){data, sizeof data}, (weir_bytes){ends, 12},
                         (weir_bytes){targets, 12}, &c, &rd, &re, &index, &msg));
    CHECK(index == 1 && msg.ptr && strstr((const char *)msg.ptr, "3 bytes") != NULL);
    free(msg.ptr);
    /* Migrate. */
    weir__list l = {0}, err = {0};
    CHECK(!weir__agg_migrate(&agg, 1, B(""), &l, &err));
    CHECK(err.ptr && strstr((const char *)err.ptr, "cannot migrate") != NULL);
    free(err.ptr);
    weir_builder_free(&b);
}

/* Free-form accumulators that show the order of the fold: merging appends "+" and `other` to
 * `acc`; merging "bad" fails with a message, "mute" without one. */
static int trail_create(weir_buf *acc, weir_error *err) {
    (void)err;
    return weir_buf_append_str(acc, "new");
}

static int trail_merge(weir_buf *acc, const weir_buf *other, weir_error *err) {
    weir_bytes o = weir_buf_view(other);
    if (weir_bytes_eq(o, "bad"))
        return weir_fail(err, "cannot merge bad into %.*s", (int)acc->len, (const char *)acc->ptr);
    if (weir_bytes_eq(o, "mute")) return WEIR_ERR;
    weir_buf_push(acc, '+');
    return weir_buf_append(acc, other->ptr, other->len);
}

/* Packs accumulators (`n` C strings) and `groups` ends as the host does, and calls the glue. */
static bool merge_call(const weir_aggregate *agg, const char *const *accs, size_t n,
                       const uint32_t *group_ends, size_t groups, weir__list *data,
                       weir__list *ends, uint32_t *index, weir__list *msg) {
    weir_buf d = {0}, e = {0}, g = {0};
    for (size_t i = 0; i < n; i++) {
        weir_buf_append_str(&d, accs[i]);
        put_u32(&e, (uint32_t)d.len);
    }
    for (size_t i = 0; i < groups; i++) put_u32(&g, group_ends[i]);
    bool ok = weir__agg_merge(agg, weir_buf_view(&d), weir_buf_view(&e), weir_buf_view(&g), data,
                              ends, index, msg);
    weir_buf_free(&d), weir_buf_free(&e), weir_buf_free(&g);
    return ok;
}

/* True when the packed accumulators `data`, `ends` are the `n` C strings `want`. */
static bool accs_are(weir__list data, weir__list ends, const char *const *want, size_t n) {
    if (ends.len != 4 * n) return false;
    uint32_t start = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t end;
        memcpy(&end, ends.ptr + 4 * i, 4);
        if (end < start || end > data.len) return false;
        weir__list item = {end > start ? data.ptr + start : NULL, end - start};
        if (!list_is(item, want[i])) {
            fprintf(stderr, "accumulator %zu: %.*s, want %s\n", i, (int)item.len,
                    (const char *)item.ptr, want[i]);
            return false;
        }
        start = end;
    }
    return start == data.len;
}

/* Calls the glue on groups `group_ends` of `accs`, expecting failure `index`, `message`. */
static void merge_fails(const weir_aggregate *agg, const char *const *accs, size_t n,
                        const uint32_t *group_ends, size_t groups, uint32_t index,
                        const char *message) {
    weir__list d = {0}, e = {0}, msg = {0};
    uint32_t got = 99;
    CHECK(!merge_call(agg, accs, n, group_ends, groups, &d, &e, &got, &msg));
    if (got != index || !list_is(msg, message))
        fprintf(stderr, "merge failed for group %u: %.*s\n  want group %u: %s\n", got,
                (int)msg.len, (const char *)msg.ptr, index, message);
    CHECK(got == index && list_is(msg, message));
    CHECK(d.ptr == NULL && e.ptr == NULL);
    free(msg.ptr);
}

static void aggregate_merge_folds_every_group_in_order(void) {
    static const weir_aggregate trail = {.create = trail_create, .merge = trail_merge};
    weir__list d = {0}, e = {0}, msg = {0};
    uint32_t index = 99;
    configure_ok(NULL);

    /* Groups of one (as stored, even empty), two and three (an empty one is a new accumulator),
     * folded left to right, in group order. */
    const char *accs[] = {"kept", "a", "b", "c", "", "d", "", "e", "f"};
    const uint32_t groups[] = {1, 3, 6, 7, 9};
    CHECK(merge_call(&trail, accs, 9, groups, 5, &d, &e, &index, &msg));
    const char *want[] = {"kept", "a+b", "c+new+d", "", "e+f"};
    CHECK(index == 0 && accs_are(d, e, want, 5));
    free(d.ptr), free(e.ptr);
    /* No groups: nothing (accumulators after the last group are not merged). */
    CHECK(merge_call(&trail, accs, 9, groups, 0, &d, &e, &index, &msg));
    CHECK(d.ptr == NULL && e.ptr == NULL && d.len == 0 && e.len == 0);

    /* Fixed-size accumulators: loaded (an empty one is a zeroed counter), merged, checked. */
    static const weir_aggregate count = {.acc_size = sizeof(counter), .add = count_add,
                                         .merge = count_merge, .finish = count_finish};
    counter c[3] = {{2, 0}, {3, 0}, {4, 0}};
    uint8_t data[3 * sizeof(counter)];
    memcpy(data, c, sizeof data);
    uint32_t ends[4] = {sizeof(counter), 2 * sizeof(counter), 2 * sizeof(counter),
                        3 * sizeof(counter)};
    uint32_t group_ends[2] = {2, 4};
    weir_bytes ends_b = {(const uint8_t *)ends, sizeof ends};
    weir_bytes groups_b = {(const uint8_t *)group_ends, sizeof group_ends};
    CHECK(weir__agg_merge(&count, (weir_bytes){data, sizeof data}, ends_b, groups_b, &d, &e,
                          &index, &msg));
    CHECK(d.len == 2 * sizeof(counter) && e.len == 8);
    if (d.len == 2 * sizeof(counter)) {
        memcpy(c, d.ptr, 2 * sizeof(counter));
        CHECK(c[0].n == 5 && c[1].n == 4);
    }
    free(d.ptr), free(e.ptr);
    /* An accumulator of the wrong size fails its group. */
    ends[3]--;
    CHECK(!weir__agg_merge(&count, (weir_bytes){data, sizeof data - 1}, ends_b, groups_b, &d, &e,
                           &index, &msg));
    CHECK(index == 1 && msg.ptr && strstr((const char *)msg.ptr, "cannot decode accumulator") != NULL);
    free(msg.ptr);

    /* The user's merge failing names its group, with its message or the fallback. */
    const char *failing[] = {"a", "b", "x", "y", "bad", "c", "d"};
    const uint32_t three[] = {2, 5, 7};
    merge_fails(&trail, failing, 7, three, 3, 1, "cannot merge bad into x+y");
    failing[4] = "mute";
    merge_fails(&trail, failing, 7, three, 3, 1, "`merge` failed (no message given)");
    const char *first[] = {"bad", "bad", "c"};
    const uint32_t two[] = {2, 3};
    merge_fails(&trail, first, 3, two, 2, 0, "cannot merge bad into bad");

    /* Malformed groups name the group (the call as a whole: group 0). */
    const char *abc[] = {"a", "b", "c"};
    merge_fails(&trail, abc, 3, (const uint32_t[]){1, 1, 3}, 3, 1,
                "malformed groups: group 1 is empty (it starts and ends at accumulator 1)");
    merge_fails(&trail, abc, 3, (const uint32_t[]){0, 3}, 2, 0,
                "malformed groups: group 0 is empty (it starts and ends at accumulator 0)");
    merge_fails(&trail, abc, 3, (const uint32_t[]){2, 1}, 2, 1,
                "malformed groups: group 1 ends at accumulator 1, before it starts (2): group "
                "ends must increase");
    merge_fails(&trail, abc, 3, (const uint32_t[]){1, 4}, 2, 1,
                "malformed groups: group 1 ends at accumulator 4, but the call has 3 accumulators");
    uint8_t one_end[4] = {3, 0, 0, 0};
    CHECK(!weir__agg_merge(&trail, B("abc"), (weir_bytes){one_end, 4}, (weir_bytes){one_end, 3},
                           &d, &e, &index, &msg));
    CHECK(index == 0 && list_is(msg, "malformed groups: 3 bytes, not a whole number of u32 ends"));
    free(msg.ptr);
    static const weir_aggregate no_merge = {.create = trail_create};
    merge_fails(&no_merge, abc, 3, two, 2, 0, "the aggregate has no `merge`");
}

int main(void) {
    json_writes_what_serde_json_writes();
    json_refuses_what_serde_json_refuses();
    json_error_names_line_and_column();
    json_get_reads_numbers_like_serde_json();
    strings_are_escaped_and_repaired_like_rust();
    doubles_use_the_shortest_form();
    batches_read_back_and_malformed_ones_are_refused();
    event_loop_keeps_order_origins_and_reports_the_failing_index();
    aggregate_add_updates_only_targeted_accumulators();
    aggregate_finish_packs_the_results_of_every_window();
    aggregate_merge_folds_every_group_in_order();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("weir C SDK: all tests passed\n");
    return 0;
}
