/* weir_test.c — native unit tests of the world-independent C SDK (weir.c): JSON reading and
 * writing as serde_json does it, UTF-8 repair, packed batches, the output builder and the
 * per-event and aggregate loops. Run with sdk/c/tests/run.sh (address and UB sanitizers on).
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
    /* Finish and migrate. */
    weir_results *r = NULL;
    weir__list err = {0};
    CHECK(weir__agg_finish(&agg, B("k"), (weir_window){0, 10}, (weir_bytes){data + 3, sizeof five}, &r, &err));
    CHECK(weir__results_len(r) == 1);
    weir__list l = weir__results_take(r, 0);
    CHECK(l.len == 1 && l.ptr[0] == '5');
    free(l.ptr);
    weir__results_free(r);
    CHECK(!weir__agg_migrate(&agg, 1, B(""), &l, &err));
    CHECK(err.ptr && strstr((const char *)err.ptr, "cannot migrate") != NULL);
    free(err.ptr);
    weir_builder_free(&b);
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
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("weir C SDK: all tests passed\n");
    return 0;
}
