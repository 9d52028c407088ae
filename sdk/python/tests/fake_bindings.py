"""Stand-ins for the modules componentize-py generates (`wit_world`, `componentize_py_types`),
so the SDK and the Python plugins can be tested with the host's Python, outside a component.

`install()` must run before `weir` is imported. `use_world(name)` selects the world the next
`@weir.<world>` decorator believes is being built. `pack_batch` and `unpack_batch` are a plain,
independent implementation of the packed layout of wit/types.wit, to check the SDK's codec.
"""

import enum
import struct
import sys
import types as pytypes
from dataclasses import dataclass

log_records = []
keyed_state = {}
keyed_timers = set()
#: What `keyed.timer-domain` answers (a one-element list, to be set by tests).
timer_domain = []


class Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


@dataclass
class Batch:
    payloads: bytes
    payload_ends: bytes
    keys: bytes
    key_ends: bytes
    times: bytes
    headers: bytes
    header_ends: bytes
    origins: bytes


@dataclass
class Window:
    start: int
    end: int


@dataclass
class Accumulators:
    data: bytes
    ends: bytes


@dataclass
class Windows:
    keys: bytes
    key_ends: bytes
    bounds: bytes


@dataclass
class Results:
    payloads: bytes
    payload_ends: bytes
    origins: bytes


@dataclass
class EventError:
    index: int
    message: str


@dataclass
class WindowError:
    index: int
    message: str


class TimeDomain(enum.Enum):
    EVENT_TIME = 0
    PROCESSING_TIME = 1


timer_domain.append(TimeDomain.EVENT_TIME)


class Level(enum.Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class _TransformWorld:
    __abstractmethods__ = frozenset({"configure", "process"})


class _AggregateWorld:
    __abstractmethods__ = frozenset(
        {"configure", "create", "add", "merge", "finish", "state_version", "migrate"}
    )


class _ProcessWorld:
    __abstractmethods__ = frozenset({"configure", "on_events", "on_timer"})


#: Markers the SDK uses to tell the worlds apart (see weir.bindings).
_TransformWorld.process = _AggregateWorld.add = _ProcessWorld.on_events = None

_WORLDS = {"transform": _TransformWorld, "aggregate": _AggregateWorld, "process": _ProcessWorld}


def install():
    """Puts the fake generated modules into `sys.modules`."""
    if "wit_world" in sys.modules:
        return
    cpt = pytypes.ModuleType("componentize_py_types")
    cpt.Err = Err
    ww = pytypes.ModuleType("wit_world")
    ww.WitWorld = _TransformWorld
    imports = pytypes.ModuleType("wit_world.imports")
    t = pytypes.ModuleType("wit_world.imports.types")
    t.Batch, t.Window, t.Accumulators, t.EventError = Batch, Window, Accumulators, EventError
    t.Windows, t.Results, t.WindowError = Windows, Results, WindowError
    lg = pytypes.ModuleType("wit_world.imports.log")
    lg.Level = Level
    lg.log = lambda level, message: log_records.append((level, message))
    kd = pytypes.ModuleType("wit_world.imports.keyed")
    kd.get = lambda name: keyed_state.get(name)
    kd.set = lambda name, value: keyed_state.__setitem__(name, bytes(value))
    kd.delete = lambda name: keyed_state.pop(name, None)
    kd.register_event_timer = lambda time: keyed_timers.add(time)
    kd.delete_event_timer = lambda time: keyed_timers.discard(time)
    kd.register_processing_timer = lambda time: keyed_timers.add(("processing", time))
    kd.delete_processing_timer = lambda time: keyed_timers.discard(("processing", time))
    kd.current_processing_time = lambda: 1_700_000_009_000
    kd.TimeDomain = TimeDomain
    kd.timer_domain = lambda: timer_domain[0]
    ww.imports = imports
    imports.types, imports.log, imports.keyed = t, lg, kd
    for name, mod in [
        ("componentize_py_types", cpt),
        ("wit_world", ww),
        ("wit_world.imports", imports),
        ("wit_world.imports.types", t),
        ("wit_world.imports.log", lg),
        ("wit_world.imports.keyed", kd),
    ]:
        sys.modules[name] = mod


def use_world(name):
    """Makes the fake bindings look like a build of world `name` (its export names are those
    of wit/types.wit, as componentize-py lists them in `__abstractmethods__`)."""
    sys.modules["wit_world"].WitWorld = _WORLDS[name]


def _u32(v):
    return struct.pack("<I", v)


def pack_headers(pairs):
    return b"".join(_u32(len(n)) + n + _u32(len(v)) + v for n, v in pairs)


def pack_batch(events):
    """A `Batch` from dicts with `payload` (bytes) and optional `key`, `time`, `headers`
    (list of byte pairs); origins are the indexes."""
    cols = {k: b"" for k in Batch.__dataclass_fields__}
    ends = {"payload_ends": 0, "key_ends": 0, "header_ends": 0}
    for i, e in enumerate(events):
        parts = {
            "payloads": e["payload"],
            "keys": e.get("key", b""),
            "headers": pack_headers(e.get("headers", [])),
        }
        for data, end in [
            ("payloads", "payload_ends"),
            ("keys", "key_ends"),
            ("headers", "header_ends"),
        ]:
            cols[data] += parts[data]
            ends[end] += len(parts[data])
            cols[end] += _u32(ends[end])
        cols["times"] += struct.pack("<q", e.get("time", 0))
        cols["origins"] += _u32(i)
    return Batch(**cols)


def _unpack_headers(data):
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
        (v,) = struct.unpack_from("<I", data, pos)
        out.append((name, data[pos + 4 : pos + 4 + v]))
        pos += 4 + v
    return out


def unpack_batch(batch):
    """The events of a `Batch` (or of its column tuple) as dicts, checking the layout."""
    if isinstance(batch, tuple):
        batch = Batch(*batch)
    assert len(batch.times) % 8 == 0, "times"
    n = len(batch.times) // 8

    def spans(data, ends, name):
        assert len(ends) == 4 * n, name
        out, start = [], 0
        for (end,) in struct.iter_unpack("<I", ends):
            assert start <= end <= len(data), name
            out.append(data[start:end])
            start = end
        assert start == len(data), name
        return out

    payloads = spans(batch.payloads, batch.payload_ends, "payload-ends")
    keys = spans(batch.keys, batch.key_ends, "key-ends")
    headers = spans(batch.headers, batch.header_ends, "header-ends")
    times = [t for (t,) in struct.iter_unpack("<q", batch.times)]
    assert len(batch.origins) == 4 * n, "origins"
    origins = [o for (o,) in struct.iter_unpack("<I", batch.origins)]
    assert origins == sorted(origins), "origins must be non-decreasing"
    return [
        {
            "payload": payloads[i],
            "key": keys[i],
            "time": times[i],
            "headers": _unpack_headers(headers[i]),
            "origin": origins[i],
        }
        for i in range(n)
    ]


def pack_accumulators(items):
    data, ends, end = b"", b"", 0
    for item in items:
        data += item
        end += len(item)
        ends += _u32(end)
    return Accumulators(data, ends)


def pack_groups(sizes):
    """The `groups` column of `merge` for groups of `sizes` accumulators (the u32 index after
    each group's last accumulator)."""
    out, end = b"", 0
    for size in sizes:
        end += size
        out += _u32(end)
    return out


def unpack_accumulators(acc):
    if isinstance(acc, tuple):
        acc = Accumulators(*acc)
    out, start = [], 0
    for (end,) in struct.iter_unpack("<I", acc.ends):
        out.append(acc.data[start:end])
        start = end
    assert start == len(acc.data)
    return out


def pack_windows(windows):
    """A `Windows` from `(key, start, end)` triples (key: bytes, empty for no key)."""
    keys, key_ends, bounds, end = b"", b"", b"", 0
    for key, start, stop in windows:
        keys += key
        end += len(key)
        key_ends += _u32(end)
        bounds += struct.pack("<qq", start, stop)
    return Windows(keys, key_ends, bounds)


def unpack_results(results, windows):
    """The `(payload, origin)` pairs of a `Results` for a call with `windows` windows, checking
    the layout (ends in range, origins non-decreasing and below `windows`)."""
    assert len(results.payload_ends) % 4 == 0, "payload-ends"
    assert len(results.origins) == len(results.payload_ends), "origins"
    out, start = [], 0
    origins = [o for (o,) in struct.iter_unpack("<I", results.origins)]
    for (end,), origin in zip(struct.iter_unpack("<I", results.payload_ends), origins):
        assert start <= end <= len(results.payloads), "payload-ends"
        assert origin < windows, "origin out of range"
        out.append((results.payloads[start:end], origin))
        start = end
    assert start == len(results.payloads), "payload-ends"
    assert origins == sorted(origins), "origins must be non-decreasing"
    return out


_app_count = 0


def make_app(world, source, name=None):
    """Runs plugin source `source` as a fresh module built for `world`; returns the module
    (its `WitWorld` is the glue class the decorators exported)."""
    global _app_count
    _app_count += 1
    use_world(world)
    name = name or f"test_app_{_app_count}"
    module = pytypes.ModuleType(name)
    module.__file__ = f"{name}.py"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def load_app(world, path):
    """Loads the plugin module at `path` as if built for `world`."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    return make_app(world, source)
