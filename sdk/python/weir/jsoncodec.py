"""Strict JSON for payloads, configs, accumulators and state: RFC 8259 in, compact UTF-8 out.

`loads` accepts exactly what serde_json (the Rust SDK and the host) accepts — no `NaN` or
`Infinity`, no numbers that overflow a float, no lone surrogate escapes — so that a payload is
refused or accepted the same way by operators written in any language; like serde_json it reads
the integer `-0` as the float `-0.0`. Integers beyond 64 bits stay exact Python ints (serde_json
reads them as floats). `dumps` writes the form
serde_json writes: no whitespace, `,` and `:` separators, non-ASCII characters as UTF-8.
Floats are written by Python's `repr`, which differs from serde_json's in exponent notation
(`1e+20` vs `1e20`, `1e-07` vs `1e-7`).

Both call the C scanner and encoder of the stdlib `json` module directly: `json.loads` and
`json.dumps` add a few Python-level steps per call that cost as much as parsing a small payload.

`Projection(names).dumps(doc)` writes chosen fields of a parsed object, in a given order, as
`dumps` would write a dict of them — without building that dict, and writing strings and
integers (the usual values) one C call each; the encoder would walk a dict at about twice the
cost.
"""

import json
import json.decoder
import json.encoder
import json.scanner
import re

__all__ = ["loads", "dumps", "JSONError", "Projection"]


class JSONError(ValueError):
    """A document that is not strict JSON, or a value that cannot be written as JSON."""


def _reject_constant(name):
    raise JSONError(f"{name} is not a JSON number")


def _finite_float(text):
    f = float(text)
    if f in (_INF, _NINF):
        raise JSONError(f"number {text} is out of range")
    return f


def _int_or_negative_zero(text):
    return -0.0 if text == "-0" else int(text)


def _not_serializable(value):
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


_INF, _NINF = float("inf"), float("-inf")
_WS = " \t\n\r"
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_scan = _decoder.scan_once
_scan_negative_zero = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_int_or_negative_zero
).scan_once
#: The integer `-0` (not `-0.5`, `-0e1` or a date's `-01`), outside or inside strings.
_NEGATIVE_ZERO = re.compile(r"-0(?![0-9.eE])")
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_markers = {}
if json.encoder.c_make_encoder is not None:
    _c_encode = json.encoder.c_make_encoder(
        _markers,
        _not_serializable,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
else:  # pragma: no cover - CPython always has the accelerator
    _c_encode = None


def loads(data):
    """Parses a JSON document from `bytes` (UTF-8) or `str`. Raises `JSONError` saying why."""
    try:
        t = type(data)
        text = data.decode() if t is bytes else data if t is str else bytes(data).decode()
        start = 0
        if text[:1] in _WS:  # also true for an empty document
            start = len(text) - len(text.lstrip(_WS))
        value, end = _scan(text, start)
        if end != len(text) and text[end:].strip(_WS):
            raise JSONError(f"trailing characters at char {end}")
        if "-0" in text and _NEGATIVE_ZERO.search(text):
            value = _scan_negative_zero(text, start)[0]
    except JSONError:
        raise
    except StopIteration as e:
        raise JSONError(f"expected a value at char {e.value}") from None
    except UnicodeDecodeError as e:
        raise JSONError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise JSONError(str(e)) from None
    if "\\u" in text:
        # A lone surrogate escape parses in Python but is invalid JSON text (not Unicode);
        # it is the one thing that makes the value unencodable as UTF-8.
        try:
            dumps(value)
        except JSONError:
            raise JSONError("lone surrogate in a \\u escape") from None
    return value


def dumps(value):
    """`value` as compact JSON bytes. Raises `JSONError` naming what cannot be written."""
    try:
        if _c_encode is None:
            return _encoder.encode(value).encode()
        return "".join(_c_encode(value, 0)).encode()
    except (TypeError, ValueError, RecursionError) as e:
        _markers.clear()  # a failed call leaves its containers marked
        raise JSONError(f"cannot write as JSON: {e}") from None


_MISSING = object()
_encode_str = json.encoder.encode_basestring
_LITERALS = {True: "true", False: "false", None: "null"}


class Projection:
    """The fields `names` of a JSON object, in this order (a repeated name counts once, at its
    first position), written as compact JSON bytes:

        keep = Projection(["user", "amount"])        # once, at configure
        keep.dumps({"amount": 5, "note": "x", "user": "bo"})   # b'{"user":"bo","amount":5}'

    The same bytes as `dumps({k: doc[k] for k in names if k in doc})`, about twice as fast.
    """

    __slots__ = ("_fields",)

    def __init__(self, names):
        fields = {}
        for name in names:
            if type(name) is not str:
                raise TypeError(f"a field name must be a str, not {type(name).__name__}")
            fields.setdefault(name, _encode_str(name) + ":")
        self._fields = tuple(fields.items())

    @property
    def names(self):
        """The field names, in output order."""
        return [name for name, _ in self._fields]

    def dumps(self, doc):
        """The fields of dict `doc` that are present, as compact JSON bytes (`b"{}"` when none
        is). Raises `JSONError` naming a value that cannot be written."""
        parts = []
        append = parts.append
        get = doc.get
        try:
            for name, prefix in self._fields:
                v = get(name, _MISSING)
                if v is _MISSING:
                    continue
                t = type(v)
                if t is str:
                    append(prefix + _encode_str(v))
                elif t is int:
                    append(prefix + int.__repr__(v))
                elif t is bool or v is None:
                    append(prefix + _LITERALS[v])
                else:
                    append(prefix + dumps(v).decode())
            return ("{" + ",".join(parts) + "}").encode()
        except (ValueError, UnicodeEncodeError) as e:  # a huge int, a lone surrogate
            raise JSONError(f"cannot write as JSON: {e}") from None
