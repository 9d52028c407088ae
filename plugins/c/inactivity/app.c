/* inactivity (world `process`), in C: reports keys gone quiet, by processing-time timers.
 *
 * Config: {"timeout_ms": 60000}. Every event moves its key's processing-time timer to
 * `timeout_ms` after the host's clock; when a timer fires the key's alert
 * {"key", "last_event_time", "silent_ms"} is emitted and its state dropped. Same behaviour and
 * output as plugins/rust/inactivity. */
#include "process.h"
#include "weir.h"

#include <string.h>

static int64_t timeout_ms = 60000;

/* State "last": the last event's time and the pending deadline, two i64 little-endian. */
typedef struct last {
    int64_t event_time;
    int64_t deadline;
} last;

static int configure(const char *config, size_t len, weir_error *err) {
    weir_json c = {0};
    weir_bytes text = {(const uint8_t *)config, len};
    if (weir_json_parse(&c, text, err) != WEIR_OK) return WEIR_ERR;
    weir_json_value v;
    int rc = WEIR_OK;
    if (weir_json_get(&c, WEIR_JSON_ROOT, "timeout_ms", 10, &v) &&
        (!weir_json_int64(&c, v, &timeout_ms) || timeout_ms <= 0))
        rc = weir_fail(err, "inactivity config: `timeout_ms` must be a positive integer");
    weir_json_free(&c);
    return rc;
}

static int read_last(last *l) {
    weir_buf b = {0};
    int found = weir_state_get("last", &b);
    if (found == 1 && b.len == sizeof *l) memcpy(l, b.ptr, sizeof *l);
    weir_buf_free(&b);
    return found == 1;
}

static int on_event(const weir_event *e, weir_output *out, weir_error *err) {
    (void)out;
    (void)err;
    last l;
    if (read_last(&l)) weir_timer_delete_processing(l.deadline);
    l.event_time = e->time;
    l.deadline = weir_processing_time() + timeout_ms;
    weir_timer_register_processing(l.deadline);
    weir_state_set("last", &l, sizeof l);
    return WEIR_OK;
}

static int on_timer(const weir_event *t, weir_output *out, weir_error *err) {
    last l;
    if (!weir_timer_is_processing() || !read_last(&l)) return WEIR_OK;
    weir_state_delete("last");
    weir_buf *p = weir_emit_begin(out);
    if (p == NULL) return weir_fail(err, "inactivity: out of memory");
    int rc = weir_buf_append_str(p, "{\"key\":");
    if (rc == WEIR_OK && t->key.len == 0) rc = weir_buf_append_str(p, "null");
    else if (rc == WEIR_OK) rc = weir_json_write_string(p, t->key.ptr, t->key.len);
    if (rc == WEIR_OK)
        rc = weir_buf_printf(p, ",\"last_event_time\":%lld,\"silent_ms\":%lld}",
                             (long long)l.event_time,
                             (long long)(weir_processing_time() - (l.deadline - timeout_ms)));
    if (rc != WEIR_OK) {
        weir_emit_abort(out);
        return weir_fail(err, "inactivity: out of memory");
    }
    return weir_emit_commit(out);
}

WEIR_EXPORT_PROCESS(configure, on_event, on_timer)
