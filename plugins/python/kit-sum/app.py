"""kit-sum (world `aggregate`): the behavioural kit's per-key count and sum, in Python.

Config: `{"field": "amount"}` (default `"amount"`). Each event's payload must be a JSON object
whose `field` is a 64-bit integer (otherwise the event fails and is dead-lettered); the
window's result is `{"key":…,"start":…,"end":…,"count":…,"sum":…}`, compact, fields in that
order. The sum is a 64-bit integer that wraps around on overflow, like the Rust kit's
`wrapping_add`. See plugins/kit/README.md.
"""

import weir
from weir import ConfigError, EventError, JSONError, loads

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _wrap_i64(n):
    """`n` wrapped into a signed 64-bit integer (two's complement)."""
    return ((n - _I64_MIN) & 0xFFFF_FFFF_FFFF_FFFF) + _I64_MIN


_KIND = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


@weir.aggregate
class Sum(weir.Aggregate):
    """Accumulator: `{"count": events, "sum": total of field}` (JSON, see weir.aggregate)."""

    def __init__(self, config):
        if type(config) is not dict:
            raise ConfigError(f"config must be a JSON object, not {weir.dumps(config).decode()}")
        unknown = sorted(set(config) - {"field"})
        if unknown:
            raise ConfigError(f"config: unknown field `{unknown[0]}` (expected field)")
        self.field = config.get("field", "amount")
        if type(self.field) is not str:
            raise ConfigError(
                f"config field `field`: expected a string, got {weir.dumps(self.field).decode()}"
            )

    def create(self):
        return {"count": 0, "sum": 0}

    def add(self, acc, event):
        try:
            doc = loads(event.payload)
        except JSONError as e:
            raise EventError(f"payload is not a JSON object: {e}") from None
        if type(doc) is not dict:
            raise EventError(
                f"payload is not a JSON object: it is {_KIND.get(type(doc), 'a JSON value')}"
            )
        field = self.field
        if field not in doc:
            raise EventError(f"field `{field}` is missing")
        value = doc[field]
        if type(value) is not int or not _I64_MIN <= value <= _I64_MAX:
            raise EventError(
                f"field `{field}` is {weir.dumps(value).decode()}, not a 64-bit integer"
            )
        total = acc["sum"] + value
        if not _I64_MIN <= total <= _I64_MAX:
            total = _wrap_i64(total)
        acc["count"] += 1
        acc["sum"] = total
        return acc

    def merge(self, a, b):
        return {"count": a["count"] + b["count"], "sum": _wrap_i64(a["sum"] + b["sum"])}

    def finish(self, key, window, acc):
        return {
            "key": key,
            "start": window.start,
            "end": window.end,
            "count": acc["count"],
            "sum": acc["sum"],
        }
