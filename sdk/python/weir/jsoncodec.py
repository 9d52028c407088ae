"""Strict JSON for payloads, configs, accumulators and state: RFC 8259 in, compact UTF-8 out.

`loads` accepts exactly what serde_json (the Rust SDK and the host) accepts — no `NaN` or
`Infinity`, no numbers that overflow a float, no lone surrogate escapes — so that a payload is
refused or accepted the same way by operators written in any language. `dumps` writes the form
serde_json writes: no whitespace, `,` and `:` separators, non-ASCII characters as UTF-8.
Integers are exact in both directions (Python ints); floats are written by Python's `repr`,
which may differ from serde_json's in the last digits of exponents (`1e+20` vs `1e20`).
"""

import json

__all__ = ["loads", "dumps", "JSONError"]


class JSONError(ValueError):
    """A document that is not strict JSON, or a value that cannot be written as JSON."""


def _reject_constant(name):
    raise JSONError(f"{name} is not a JSON number")


def _finite_float(text):
    f = float(text)
    if f in (_INF, _NINF):
        raise JSONError(f"number {text} is out of range")
    return f


_INF, _NINF = float("inf"), float("-inf")
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decode = _decoder.decode
_encode = _encoder.encode


def loads(data):
    """Parses a JSON document from `bytes` (UTF-8) or `str`. Raises `JSONError` saying why."""
    try:
        text = data if type(data) is str else bytes(data).decode()
        value = _decode(text)
    except JSONError:
        raise
    except UnicodeDecodeError as e:
        raise JSONError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise JSONError(str(e)) from None
    if "\\u" in text:
        # A lone surrogate escape parses in Python but is invalid JSON text (not Unicode);
        # it is the one thing that makes the value unencodable as UTF-8.
        try:
            _encode(value).encode()
        except UnicodeEncodeError:
            raise JSONError("lone surrogate in a \\u escape") from None
    return value


def dumps(value):
    """`value` as compact JSON bytes. Raises `JSONError` naming what cannot be written."""
    try:
        return _encode(value).encode()
    except (TypeError, ValueError) as e:
        raise JSONError(f"cannot write as JSON: {e}") from None
