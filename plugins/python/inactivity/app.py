"""inactivity (world `process`), in Python: reports keys gone quiet, by processing-time timers.

Config: `{"timeout_ms": 60000}`. Every event moves its key's processing-time timer to
`timeout_ms` after the host's clock; when a timer fires the key's alert
`{"key", "last_event_time", "silent_ms"}` is emitted and its state dropped. Same behaviour and
output as plugins/rust/inactivity.
"""

import weir
from weir import ConfigError


@weir.process
class Inactivity(weir.Process):
    def __init__(self, config):
        super().__init__(config)
        self.timeout = config.get("timeout_ms", 60_000)
        if type(self.timeout) is not int or self.timeout <= 0:
            raise ConfigError("inactivity config: `timeout_ms` must be a positive integer")

    def on_event(self, event, state):
        last = state.get("last")
        if last is not None:
            state.delete_processing_timer(last["deadline"])
        deadline = state.processing_time() + self.timeout
        state.register_processing_timer(deadline)
        state.set("last", {"event_time": event.time, "deadline": deadline})
        return None

    def on_timer(self, key, time, state):
        if state.timer_domain != "processing":
            return None
        last = state.get("last")
        if last is None:
            return None
        state.delete("last")
        silent = state.processing_time() - (last["deadline"] - self.timeout)
        return {"key": key, "last_event_time": last["event_time"], "silent_ms": silent}
