/* `forward`: every event out unchanged — measures the C SDK's per-event cost. */
#include "transform.h"
#include "weir.h"

static int on_event(const weir_event *e, weir_output *out, weir_error *err) {
    (void)e;
    (void)err;
    return weir_forward(out);
}

WEIR_EXPORT_TRANSFORM(NULL, on_event)
