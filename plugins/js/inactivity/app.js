// inactivity (world `process`), in JavaScript: reports keys gone quiet, by processing-time timers.
//
// Config: {"timeout_ms": 60000}. Every event moves its key's processing-time timer to
// `timeout_ms` after the host's clock; when a timer fires the key's alert
// {"key", "last_event_time", "silent_ms"} is emitted and its state dropped. Same behaviour and
// output as plugins/rust/inactivity.

import { process } from "weir";

export default process({
  configure(config) {
    const timeout = config.timeout_ms ?? 60000;
    if (!Number.isSafeInteger(timeout) || timeout <= 0) throw new Error("inactivity config: `timeout_ms` must be a positive integer");
    return { timeout };
  },

  onEvent(event, state, { timeout }) {
    const last = state.get("last");
    if (last !== undefined) state.deleteProcessingTimer(last.deadline);
    const deadline = state.processingTime() + timeout;
    state.registerProcessingTimer(deadline);
    state.set("last", { event_time: event.time, deadline });
    return null;
  },

  onTimer(time, state, { timeout }) {
    if (state.timerDomain !== "processing") return null;
    const last = state.get("last");
    if (last === undefined) return null;
    state.delete("last");
    const silent = state.processingTime() - (last.deadline - timeout);
    return { key: state.keyString, last_event_time: last.event_time, silent_ms: silent };
  },
});
