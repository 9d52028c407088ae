"""The `aggregate` world in Python (mirrors sdk/src/aggregate.rs): a window aggregate is a class
deriving from `weir.Aggregate`, exported with `@weir.aggregate`.

    @weir.aggregate
    class Count(weir.Aggregate):
        def __init__(self, config):      # config: the pipeline's JSON config ({} when absent)
            self.field = config.get("field", "amount")
        def create(self):                 # the empty accumulator (see below)
            return {"count": 0}
        def add(self, acc, event):        # returns the updated accumulator
            acc["count"] += 1
            return acc
        def merge(self, a, b):
            return {"count": a["count"] + b["count"]}
        def finish(self, key, window, acc):   # payload(s) of the window's result
            return {"key": key, "start": window.start, "count": acc["count"]}

The host owns the accumulators and keeps them as bytes across checkpoints and plugin upgrades;
the SDK writes them as compact JSON of the Python value (`create`'s return value and what `add`
and `merge` return). JSON is stable and self-describing: to evolve an accumulator, add fields
and read them with a default (`acc.get("max", 0)`) so accumulators written by the previous
version still load. An `add` that returns None keeps the accumulator it was given (mutated in
place), so accumulators cannot be None themselves. The host calls `create` once per instance
and starts every new window with a copy of its bytes, so `create` must depend on nothing but
the configuration (an empty accumulator from the host is still read as `create()`).

A batch call decodes each accumulator it touches once, applies its events, and encodes it once.
`add` raising (`weir.EventError` or any exception) dead-letters that event; the host calls
again without it, with the accumulators as they were. `finish` gets the key as text (`""` for
no key) and the window (`.start`, `.end`, ms) and returns None (no result), one payload
(bytes, str, or a JSON value) or a list of payloads. The host finishes all the windows that
fire together in one call (packed `windows` and `accumulators` in, packed `results` out, each
payload with the index of its window as origin); the SDK calls `finish` once per window, in
order. `finish` raising for a window reports that window (`window-error`): the host keeps its
state and calls again without it.

Likewise the host makes every merge due together in one call (the panes of sliding windows that
fire together, the session windows an event bridges): packed `accumulators` and `groups` (the
index after each group's last accumulator) in, one accumulator per group out. The SDK folds
each group left to right, which is time order, with the pairwise `merge(a, b)` (decoding each
accumulator once and encoding each result once); a group of one is returned as stored. `merge`
raising for a group reports that group (`window-error`): the host reports its window, keeps its
state and calls again without it.

When a change makes accumulators written by an earlier version unreadable as they are, raise
`state_version` (a class attribute, 0 at first; an instance may set its own in `__init__`) and
implement `migrate(version, old)`: it gets the bytes an earlier version wrote (`weir.loads(old)`
for this SDK's JSON) and returns the accumulator in the current form. The host records the
version in checkpoints and migrates when an older checkpoint is restored.
"""

from array import array

from . import jsoncodec, log
from .bindings import Err, export, types
from .event import (
    ConfigError,
    Event,
    EventError,
    Output,
    describe,
    events_of,
    parse_config,
    payload_bytes,
)
from .packed import I64, U32, InputBatch, pack_ends, slices, starts_of, u32s

__all__ = ["Aggregate", "aggregate"]

_MISSING = object()


class Aggregate:
    """Base class of window aggregates; see the module documentation."""

    #: The version of the accumulator encoding (see the module documentation).
    state_version = 0

    def __init__(self, config):
        self.config = config

    def create(self):
        raise NotImplementedError

    def add(self, acc, event):
        raise NotImplementedError

    def merge(self, a, b):
        raise NotImplementedError

    def finish(self, key, window, acc):
        raise NotImplementedError

    def migrate(self, version, old):
        raise ValueError(
            f"cannot migrate accumulators from state version {version} to {self.state_version}"
        )


def decode_acc(data, create):
    """An accumulator from its bytes (`create()` for empty bytes)."""
    if not data:
        return create()
    try:
        return jsoncodec.loads(data)
    except jsoncodec.JSONError as e:
        raise EventError(f"cannot decode accumulator: {e}") from None


def encode_acc(acc):
    """An accumulator's bytes."""
    try:
        return jsoncodec.dumps(acc)
    except jsoncodec.JSONError as e:
        raise EventError(f"cannot encode accumulator: {e}") from None


def result_payloads(result):
    """The payloads `finish` returned, as a list of bytes."""
    if result is None:
        return []
    items = result if type(result) in (list, tuple) else (result,)
    out = []
    for r in items:
        if isinstance(r, (Event, Output)):
            raise TypeError(
                "finish returns payloads (bytes, str or JSON values), "
                "not events: the host sets the key, time and headers"
            )
        out.append(payload_bytes(r))
    return out


def aggregate(cls):
    """Exports class `cls` (a `weir.Aggregate`) as the plugin's `aggregate` operator."""
    missing = [
        m
        for m in ("create", "add", "merge", "finish")
        if getattr(cls, m, None) in (None, getattr(Aggregate, m))
    ]
    if missing:
        raise TypeError(f"aggregate `{cls.__name__}` does not define {', '.join(missing)}")
    check_state_version(cls.state_version, f"`{cls.__name__}.state_version`")

    class AggregateWorld:
        """The `aggregate` world's exports, generated by `@weir.aggregate`."""

        op = None

        def configure(self, config):
            log.host_ready()
            try:
                op = cls(parse_config(config))
                check_state_version(op.state_version, f"`{cls.__name__}.state_version`")
            except Exception as e:
                raise Err(describe(e)) from None
            AggregateWorld.op = op

        @staticmethod
        def _op(call, error=None):
            """The configured operator; else an error saying that `call` came before a
            successful `configure`: `error(index=0, ...)` (an `EventError` or a `WindowError`,
            index 0: the whole call) for calls whose error is a record, the text otherwise."""
            if AggregateWorld.op is None:
                message = f"`{call}` called before a successful `configure`"
                raise Err(message if error is None else error(index=0, message=message))
            return AggregateWorld.op

        def create(self):
            op = self._op("create")
            try:
                return encode_acc(op.create())
            except Exception as e:
                raise Err(describe(e)) from None

        def add(self, accumulators, targets, input):
            op = self._op("add", types.EventError)
            return types.Accumulators(*run_add(op, accumulators, targets, input))

        def merge(self, accumulators, groups):
            op = self._op("merge", types.WindowError)
            return types.Accumulators(*run_merge(op, accumulators, groups))

        def finish(self, windows, accumulators):
            op = self._op("finish", types.WindowError)
            return types.Results(*run_finish(op, windows, accumulators))

        def state_version(self):
            op = AggregateWorld.op
            return cls.state_version if op is None else op.state_version

        def migrate(self, version, accumulator):
            op = self._op("migrate")
            if version == op.state_version:
                return accumulator
            try:
                return encode_acc(op.migrate(version, accumulator))
            except Exception as e:
                raise Err(describe(e)) from None

    export("aggregate", AggregateWorld, cls.__module__, f"class `{cls.__name__}`")
    return cls


def check_state_version(version, what):
    """Refuses a state version that is not a u32."""
    if type(version) is not int or not 0 <= version < 1 << 32:
        raise ConfigError(f"{what} must be an int from 0 to 2^32-1, not {version!r}")


def run_add(op, accumulators, targets, batch):
    """Adds the events of `batch` to their target accumulators; returns `(data, ends)`.

    Raises `Err(event-error)` naming the first event that failed.
    """
    src = InputBatch(batch)
    data = accumulators.data
    ends = u32s(accumulators.ends)
    starts = starts_of(ends)
    count = len(ends)
    target_of = u32s(targets)
    accs = {}
    add = op.add
    create = op.create
    i = 0
    try:
        for i, event in enumerate(events_of(src)):
            t = target_of[i]
            acc = accs.get(t, _MISSING)
            if acc is _MISSING:
                if t >= count:
                    raise EventError(
                        f"target {t} is not an accumulator index (the batch has {count})"
                    )
                acc = decode_acc(data[starts[t] : ends[t]], create)
            r = add(acc, event)
            accs[t] = acc if r is None else r
    except Exception as e:
        raise Err(types.EventError(index=i, message=describe(e))) from None
    parts = slices(data, starts, ends)
    for t, acc in accs.items():
        try:
            parts[t] = encode_acc(acc)
        except Exception as e:
            first = list(target_of).index(t)
            raise Err(types.EventError(index=first, message=describe(e))) from None
    return b"".join(parts), pack_ends(parts)


def run_merge(op, accumulators, groups):
    """Merges every group of `accumulators` (`groups`: the u32 index after each group's last
    accumulator) left to right with the author's pairwise `merge`; returns `(data, ends)`, one
    accumulator per group, in group order.

    Raises `Err(window-error)` naming the first group that failed or is malformed (0 when the
    `groups` column as a whole is).
    """
    if len(groups) % 4 != 0:
        raise Err(
            types.WindowError(
                index=0,
                message=f"malformed groups: {len(groups)} bytes, not a whole number of u32 ends",
            )
        )
    acc_ends = u32s(accumulators.ends)
    accs = slices(accumulators.data, starts_of(acc_ends), acc_ends)
    count = len(accs)
    merge = op.merge
    create = op.create
    parts = []
    start = 0
    g = 0
    try:
        for g, end in enumerate(u32s(groups)):
            if end <= start or end > count:
                raise EventError(group_problem(g, start, end, count))
            if end - start == 1:
                # A group of one is its accumulator: no decoding, no encoding.
                parts.append(accs[start])
            else:
                acc = decode_acc(accs[start], create)
                for i in range(start + 1, end):
                    acc = merge(acc, decode_acc(accs[i], create))
                    if acc is None:
                        raise EventError("merge returned None: return the merged accumulator")
                parts.append(encode_acc(acc))
            start = end
    except Exception as e:
        raise Err(types.WindowError(index=g, message=describe(e))) from None
    return b"".join(parts), pack_ends(parts)


def group_problem(g, start, end, count):
    """What is wrong with group `g` of a `merge` call, which starts at accumulator index `start`
    (where the group before it ends) and ends at `end` (`count` accumulators in all)."""
    if end > count:
        return (
            f"malformed groups: group {g} ends at accumulator {end}, "
            f"but the call has {count} accumulators"
        )
    if end == start:
        return f"malformed groups: group {g} is empty (it starts and ends at accumulator {end})"
    return (
        f"malformed groups: group {g} ends at accumulator {end}, before it starts ({start}): "
        "group ends must increase"
    )


def run_finish(op, windows, accumulators):
    """Finishes every window of `windows` (accumulator `i` of `accumulators` for window `i`);
    returns the packed `results` columns `(payloads, payload_ends, origins)`.

    Raises `Err(window-error)` naming the first window that failed.
    """
    key_ends = u32s(windows.key_ends)
    keys = slices(windows.keys, starts_of(key_ends), key_ends)
    bounds = array(I64, windows.bounds)
    acc_ends = u32s(accumulators.ends)
    accs = slices(accumulators.data, starts_of(acc_ends), acc_ends)
    window_of = types.Window
    finish = op.finish
    create = op.create
    payloads = []
    origins = array(U32)
    i = 0
    try:
        for i, key in enumerate(keys):
            acc = decode_acc(accs[i], create)
            window = window_of(start=bounds[2 * i], end=bounds[2 * i + 1])
            out = result_payloads(finish(key.decode(errors="replace"), window, acc))
            if out:
                payloads += out
                origins.extend([i] * len(out))
    except Exception as e:
        raise Err(types.WindowError(index=i, message=describe(e))) from None
    return b"".join(payloads), pack_ends(payloads), origins.tobytes()
