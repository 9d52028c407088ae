"""weir: write weir stream operators in Python.

A weir operator is a WebAssembly component implementing a world of the `weir:operator` WIT
package (wit/types.wit). The host calls it once per packed micro-batch; this SDK hides the
packing, so an operator is written one event at a time:

    import weir

    @weir.transform
    def process(event, config):
        doc = event.json
        if doc.get("amount", 0) < config.get("min", 0):
            return None              # drop
        return {"user": doc["user"]}  # one event: this JSON payload, same key/time/headers

`app.py` plus a `weir-plugin.toml` (`name`, `lang = "python"`, `world`) is a plugin; build it
with `sdk/python/build.sh <plugin-dir> <out.wasm>` (componentize-py, offline).

Module map: `event` (Event, Output, EventError, ConfigError); one module of glue per world:
`transform_world` (`@weir.transform`, `@weir.configure`), `aggregate_world` (`weir.Aggregate`,
`@weir.aggregate`), `process_world` (`weir.Process`, `@weir.process`, the `Keyed` state
handle); `log` (`weir.log.info(...)`); `jsoncodec` (the strict JSON the SDK reads and writes:
`weir.loads`, `weir.dumps`,
`weir.Projection`); `packed` (the batch codec); `bindings` (the door to
componentize-py's generated bindings).
"""

from . import log
from .aggregate_world import Aggregate, aggregate
from .event import ConfigError, Event, EventError, Output
from .jsoncodec import JSONError, Projection, dumps, loads
from .process_world import Events, Keyed, Process, process
from .transform_world import configure, transform

__all__ = [
    "Aggregate",
    "ConfigError",
    "Event",
    "EventError",
    "Events",
    "JSONError",
    "Keyed",
    "Output",
    "Process",
    "Projection",
    "aggregate",
    "configure",
    "dumps",
    "loads",
    "log",
    "process",
    "transform",
]
