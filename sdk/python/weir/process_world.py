"""The keyed `process` world in Python (mirrors sdk/src/process.rs): a class deriving from
`weir.Process`, exported with `@weir.process`, sees the events of one key at a time with that
key's state and event-time and processing-time timers (`Keyed`, kept by the host).

    @weir.process
    class FirstPerHour(weir.Process):
        def on_event(self, event, state):            # one event of the key
            if state.get("seen"):
                return None
            state.set("seen", True)
            state.register_event_timer(event.time + 3_600_000)
            return event
        def on_timer(self, key, time, state):        # a timer of `key` fired
            state.delete("seen")

`on_event(event, state)` returns what a `transform` returns (see `weir.transform_world`). For logic
over the whole run of a key's events, override `on_events(key, events, state)` instead and
yield (or return a list of) outputs while iterating `events`: each output's origin is the event
most recently taken from `events`, an exception fails that event (or `EventError(msg,
event=e)`'s), and a failed call's state changes are undone by the host. `on_timer(key, time,
state)` returns payloads or `weir.Output`s; they get the timer's key and time unless set.
Keys are passed as text (`""` for no key); `state.key_bytes` has the bytes.
"""

from types import GeneratorType

from . import jsoncodec, log
from .bindings import Err, export, types
from .event import Emitter, Event, EventError, Output, describe, events_of, parse_config
from .packed import InputBatch, OutputBuilder

try:
    from wit_world.imports import keyed as _keyed
except ImportError:  # not inside a `process` component build
    _keyed = None

__all__ = ["Process", "process", "Keyed", "Events"]


class Keyed:
    """The current key's state and timers. Values are stored by the host as JSON (`get`/`set`)
    or raw bytes (`get_bytes`/`set_bytes`); they survive restarts and plugin upgrades."""

    __slots__ = ("key_bytes",)

    def __init__(self, key_bytes):
        self.key_bytes = key_bytes

    @property
    def key(self):
        """The key as text (`""` for no key)."""
        return self.key_bytes.decode(errors="replace")

    def get(self, name, default=None):
        """State `name` of this key, decoded from JSON; `default` when absent."""
        raw = _keyed.get(name)
        if raw is None:
            return default
        try:
            return jsoncodec.loads(raw)
        except jsoncodec.JSONError as e:
            raise EventError(f"state {name!r} cannot be decoded: {e}") from None

    def set(self, name, value):
        """Sets state `name` of this key to `value`, written as JSON."""
        try:
            raw = jsoncodec.dumps(value)
        except jsoncodec.JSONError as e:
            raise EventError(f"state {name!r} cannot be encoded: {e}") from None
        _keyed.set(name, raw)

    def get_bytes(self, name):
        """State `name` of this key as bytes, or None."""
        return _keyed.get(name)

    def set_bytes(self, name, value):
        """Sets state `name` of this key to the bytes `value`."""
        _keyed.set(name, bytes(value))

    def delete(self, name):
        """Deletes state `name` of this key."""
        _keyed.delete(name)

    def register_event_timer(self, time):
        """Calls `on_timer` for this key once the watermark reaches `time` (ms)."""
        _keyed.register_event_timer(time)

    def delete_event_timer(self, time):
        """Cancels this key's event-time timer at `time`, if any."""
        _keyed.delete_event_timer(time)

    def register_processing_timer(self, time):
        """Calls `on_timer` for this key once the host's wall clock reaches `time` (ms since
        the Unix epoch; see `processing_time`)."""
        _keyed.register_processing_timer(time)

    def delete_processing_timer(self, time):
        """Cancels this key's processing-time timer at `time`, if any."""
        _keyed.delete_processing_timer(time)

    def processing_time(self):
        """The host's processing time now (ms since the Unix epoch; never moves back)."""
        return _keyed.current_processing_time()

    @property
    def timer_domain(self):
        """In `on_timer`: "event" or "processing", the kind of timer that fired."""
        if _keyed.timer_domain() == _keyed.TimeDomain.PROCESSING_TIME:
            return "processing"
        return "event"


class Events:
    """The events of one `on_events` call: iterate it (more than once if need be); `len()`
    counts them. It remembers the furthest event taken, to which outputs and errors belong."""

    __slots__ = ("_src", "cursor")

    def __init__(self, src):
        self._src = src
        self.cursor = 0

    def __len__(self):
        return self._src.n

    def __iter__(self):
        for i, event in enumerate(events_of(self._src)):
            if i > self.cursor:
                self.cursor = i
            yield event


class Process:
    """Base class of keyed process functions; see the module documentation."""

    def __init__(self, config):
        self.config = config

    def on_event(self, event, state):
        raise NotImplementedError(f"{type(self).__name__} defines neither on_event nor on_events")

    def on_events(self, key, events, state):
        on_event = self.on_event
        for event in events:
            r = on_event(event, state)
            if r is None:
                continue
            if type(r) is list or type(r) is tuple:
                yield from r
            else:
                yield r

    def on_timer(self, key, time, state):
        return None


def _results(result):
    """What a callback returned, as an iterable of single outputs."""
    if result is None:
        return ()
    if type(result) in (list, tuple, GeneratorType) or hasattr(result, "__next__"):
        return result
    return (result,)


def process(cls):
    """Exports class `cls` (a `weir.Process`) as the plugin's keyed `process` operator."""
    if getattr(cls, "on_event", None) is Process.on_event and cls.on_events is Process.on_events:
        raise TypeError(f"process `{cls.__name__}` defines neither on_event nor on_events")

    class ProcessWorld:
        """The `process` world's exports, generated by `@weir.process`."""

        op = None

        def configure(self, config):
            log.host_ready()
            try:
                ProcessWorld.op = cls(parse_config(config))
            except Exception as e:
                raise Err(describe(e)) from None

        def on_events(self, key, input):
            op = ProcessWorld.op
            if op is None:
                raise Err(
                    types.EventError(
                        index=0, message="`on-events` called before a successful `configure`"
                    )
                )
            src = InputBatch(input)
            out = OutputBuilder(src)
            emit = Emitter(out).emit
            events = Events(src)
            try:
                for r in _results(op.on_events(key.decode(errors="replace"), events, Keyed(key))):
                    c = events.cursor
                    emit(r, c, c)
            except Exception as e:
                event = getattr(e, "event", None)
                index = event.index if isinstance(event, Event) else events.cursor
                raise Err(types.EventError(index=index, message=describe(e))) from None
            return types.Batch(*out.columns())

        def on_timer(self, key, time):
            op = ProcessWorld.op
            if op is None:
                raise Err("`on-timer` called before a successful `configure`")
            out = OutputBuilder(None)
            emit = Emitter(out).emit
            try:
                for r in _results(op.on_timer(key.decode(errors="replace"), time, Keyed(key))):
                    if isinstance(r, Event):
                        raise TypeError(
                            "on_timer has no input events to forward; return payloads or weir.Output"
                        )
                    if type(r) is not Output:
                        r = Output(r)
                    if r.key is None:
                        r.key = key
                    if r.time is None:
                        r.time = time
                    emit(r, 0, None)
            except Exception as e:
                raise Err(describe(e)) from None
            return types.Batch(*out.columns())

    export("process", ProcessWorld, cls.__module__, f"class `{cls.__name__}`")
    return cls
