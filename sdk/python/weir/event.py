"""What a plugin author touches: `Event` (a lazy view of one input event), `Output` (an output
event that changes key, time or headers) and `EventError` (this event cannot be handled).

An `Event` is a view of the packed input batch: payloads and times are split out for the whole
batch in one C-level pass (nearly every operator reads them), keys and headers are read on
access, and `event.json` parses the payload once and caches it. What an operator returns for
an event is turned into output events by `Emitter` (see `weir.transform_world` for the rules).
"""

import os
from itertools import repeat
from operator import itemgetter

from . import jsoncodec
from .packed import pack_header, slices, unpack_headers

__all__ = ["Event", "Output", "EventError", "ConfigError"]

_UNSET = object()
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class EventError(Exception):
    """Raised by an operator for an event it cannot handle: the host sends that event to the
    pipeline's dead-letter subject with `message`, and processes the rest of the batch.

    `event` names the failing event where the SDK cannot tell (a `process` operator that
    raises after taking several events); by default it is the event being handled.
    """

    def __init__(self, message, event=None):
        super().__init__(message)
        self.message = str(message)
        self.event = event


class ConfigError(ValueError):
    """Raised while starting an operator for a configuration it refuses; the pipeline is refused
    with `message`, which should name the field: "config field 'min': expected a number"."""

    def __init__(self, message):
        super().__init__(message)
        self.message = str(message)


def parse_config(text):
    """The operator's JSON configuration, parsed; errors name it as the config."""
    try:
        return jsoncodec.loads(text)
    except jsoncodec.JSONError as e:
        raise ConfigError(f"config is not valid JSON: {e}") from None


class Event(tuple):
    """One input event, borrowed from the packed batch.

    - `key`: bytes (`b""` when the event has no key); `key_str`: the key as text, or None when
      there is no key or it is not UTF-8;
    - `time`: event time, milliseconds since the Unix epoch;
    - `payload`: bytes; `text`: the payload as UTF-8 text; `json`: the payload parsed as JSON
      (once; an invalid payload raises `EventError`);
    - `headers`: dict of name -> value (text; the first value of a repeated name);
      `header_items`: every `(name, value)` pair in order; `header(name)`: one value or None;
    - `index`: position of the event in its batch.

    Return the event itself from `process` to forward it unchanged, or `event.replace(...)` to
    forward it with some fields changed.

    An event is the tuple `(batch, index, payload, time)`: a tuple subclass, because the SDK
    makes one per input event and a tuple is made in C (`map(Event, zip(...))`), where a class
    with `__init__` costs a Python call per event; and reading `payload`, `time` and `index`
    is then an `itemgetter`, not a Python-level property.
    """

    __slots__ = ()

    index = property(itemgetter(1), doc="Position of the event in its batch.")
    payload = property(itemgetter(2), doc="The payload bytes.")
    time = property(itemgetter(3), doc="Event time, milliseconds since the Unix epoch.")

    @property
    def key(self):
        return self[0].key(self[1])

    @property
    def key_str(self):
        k = self[0].key(self[1])
        if not k:
            return None
        try:
            return k.decode()
        except UnicodeDecodeError:
            return None

    @property
    def text(self):
        try:
            return self.payload.decode()
        except UnicodeDecodeError as e:
            raise EventError(f"payload is not UTF-8 text ({e.reason} at byte {e.start})") from None

    @property
    def json(self):
        cache = self[0].json_cache
        i = self[1]
        j = cache.get(i, _UNSET)
        if j is _UNSET:
            try:
                j = cache[i] = jsoncodec.loads(self[2])
            except jsoncodec.JSONError as e:
                raise EventError(f"payload is not JSON: {e}") from None
        return j

    @property
    def header_items(self):
        return [
            (n.decode(errors="surrogateescape"), v.decode(errors="surrogateescape"))
            for n, v in unpack_headers(self[0].headers(self[1]))
        ]

    @property
    def headers(self):
        out = {}
        for n, v in self.header_items:
            out.setdefault(n, v)
        return out

    def header(self, name):
        """The first value of header `name`, or None."""
        for n, v in self.header_items:
            if n == name:
                return v
        return None

    def replace(self, payload=None, *, key=None, time=None, headers=None):
        """An output event like this one with the given fields changed (None keeps them)."""
        return Output(payload, key=key, time=time, headers=headers, source=self)

    def __repr__(self):
        return (
            f"Event(index={self.index}, key={self.key!r}, time={self.time}, "
            f"payload={self.payload[:64]!r})"
        )


class Output:
    """An output event. Fields left None are inherited from the input event it comes from.

    - `payload`: bytes, str (written as UTF-8) or any other JSON value (written as JSON);
    - `key`: str or bytes (`""` for no key); `time`: int, ms since the Unix epoch;
    - `headers`: a dict or a list of `(name, value)` pairs (str or bytes); replaces the
      inherited headers — `{**event.headers, "x": "1"}` adds one.
    """

    __slots__ = ("payload", "key", "time", "headers", "source")

    def __init__(self, payload=None, *, key=None, time=None, headers=None, source=None):
        self.payload = payload
        self.key = key
        self.time = time
        self.headers = headers
        self.source = source

    def __repr__(self):
        return (
            f"Output(payload={self.payload!r}, key={self.key!r}, time={self.time!r}, "
            f"headers={self.headers!r})"
        )


def events_of(src):
    """The events of input batch `src`, made in one C-level pass."""
    return map(
        Event,
        zip(repeat(src), range(src.n), slices(src.payloads, src.p_start, src.p_end), src.times),
    )


def payload_bytes(value):
    """The bytes of an output payload: bytes as is, str as UTF-8, anything else as JSON."""
    t = type(value)
    if t is bytes:
        return value
    if t is str:
        return value.encode()
    if t is bytearray or t is memoryview:
        return bytes(value)
    return jsoncodec.dumps(value)


def _as_bytes(value, what):
    if type(value) is str:
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def pack_headers(headers):
    """Packs a dict or a list of `(name, value)` pairs into the WIT header layout."""
    items = headers.items() if isinstance(headers, dict) else headers
    out = []
    for pair in items:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError(
                f"headers must be a dict or (name, value) pairs, got {pair!r}"
            ) from None
        out.append(
            pack_header(_as_bytes(name, "a header name"), _as_bytes(value, "a header value"))
        )
    return b"".join(out)


def check_time(time):
    """`time` as an event time (an int within i64)."""
    if type(time) is not int or not _I64_MIN <= time <= _I64_MAX:
        raise TypeError(
            f"an event time must be an int of milliseconds within 64 bits, not {time!r}"
        )
    return time


class Emitter:
    """Turns what an operator returns into output events of an `OutputBuilder`.

    `emit(result, origin, source)`: `result` is None (nothing), an `Event` (forwarded), an
    `Output`, bytes/str/another JSON value (a payload), or a list or tuple of those. Outputs
    inherit key, time and headers from input event `source` (an index, or None for none).
    """

    __slots__ = ("out", "src")

    def __init__(self, out):
        self.out = out
        self.src = out.src

    def emit(self, result, origin, source):
        t = type(result)
        if t is list or t is tuple:
            for r in result:
                if type(r) is list or type(r) is tuple:
                    raise TypeError(
                        "a list of outputs cannot hold another list; "
                        "wrap a JSON array payload in weir.Output(...)"
                    )
                self.emit(r, origin, source)
            return
        if result is None:
            return
        out = self.out
        if t is Event:
            if result[0] is not self.src:
                raise TypeError("an Event can only be forwarded within the call that received it")
            if result[1] == origin:
                out.payloads.append(None)  # forwarded: see OutputBuilder
                out.origins.append(origin)
            else:
                out.payloads.append(result[2])
                out.origins.append(origin)
                out.overrides[len(out.origins) - 1] = (result[1], None, None, None)
            return
        if t is Output:
            src_event = result.source
            if src_event is not None:
                source = src_event.index
            payload = result.payload
            if payload is None:
                if src_event is None and source is None:
                    raise TypeError("an Output needs a payload when there is no input event")
                payload = self.src.payload(source) if src_event is None else src_event.payload
            else:
                payload = payload_bytes(payload)
            key = None if result.key is None else _as_bytes(result.key, "a key")
            time = None if result.time is None else check_time(result.time)
            hdrs = None if result.headers is None else pack_headers(result.headers)
            out.payloads.append(payload)
            out.origins.append(origin)
            if key is not None or time is not None or hdrs is not None or source != origin:
                out.overrides[len(out.origins) - 1] = (source, key, time, hdrs)
            return
        out.payloads.append(payload_bytes(result))
        out.origins.append(origin)
        if source != origin:
            out.overrides[len(out.origins) - 1] = (source, None, None, None)


def describe(error):
    """The message a failed call reports: an `EventError`'s own message, or the exception type,
    message and the place it was raised (file:line in function — no source is read)."""
    if isinstance(error, (EventError, ConfigError)):
        return error.message
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    tb = error.__traceback__
    if tb is None:
        return text
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{text} (at {os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name})"
