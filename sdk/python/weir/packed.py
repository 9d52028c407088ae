"""The packed batch codec of `wit/types.wit` for Python plugins (mirrors sdk/src/packed.rs).

Reading: `InputBatch` turns the `list<u8>` columns of a batch the host passed in into `array`s of
offsets and times once per batch (a memcpy each), so that an event's fields are two index
lookups and a slice away. Writing: `OutputBuilder` collects what a plugin emits (a payload and an
origin per output event, plus the rare key/time/header overrides) and packs every column with
C-level passes (`bytes.join`, `itertools.accumulate`, `array`) when the batch ends, so an
emission costs two list appends. Nothing here validates host input again: the host guarantees
the layout of the batches it sends, and checks every batch a plugin returns.
"""

import sys
from array import array
from itertools import accumulate
from struct import pack, unpack_from

if sys.byteorder != "little":  # Wasm is little-endian; the columns are read as native arrays.
    raise ImportError("weir.packed reads little-endian columns as native arrays")

#: Typecodes of 4-byte unsigned and 8-byte signed integers.
U32 = "I" if array("I").itemsize == 4 else "L"
I64 = "q"

_ZERO_U32 = array(U32, [0])


def u32s(data):
    """The little-endian u32 column `data` as an array."""
    return array(U32, data)


def starts_of(ends):
    """Start offsets matching the end offsets `ends` (`end(i-1)`, with `end(-1) = 0`)."""
    starts = _ZERO_U32 + ends
    starts.pop()
    return starts


def slices(data, starts, ends):
    """Every `data[starts[i]:ends[i]]`, as a list (one C-level pass)."""
    return list(map(data.__getitem__, map(slice, starts, ends)))


def pack_ends(items):
    """The u32 end-offset column of the concatenation of `items`."""
    return array(U32, accumulate(map(len, items))).tobytes()


def pack_header(name, value):
    """One packed header entry: u32 name length, name, u32 value length, value (bytes in)."""
    return pack("<I", len(name)) + name + pack("<I", len(value)) + value


def unpack_headers(data):
    """The `(name, value)` byte pairs of one event's packed headers."""
    out = []
    pos, end = 0, len(data)
    while pos < end:
        (n,) = unpack_from("<I", data, pos)
        name = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
        (v,) = unpack_from("<I", data, pos)
        out.append((name, data[pos + 4 : pos + 4 + v]))
        pos += 4 + v
    return out


class InputBatch:
    """A batch the host passed in, with its offset and time columns decoded.

    Event `i`'s payload is `payloads[p_start[i]:p_end[i]]` and its time `times[i]`; keys and
    headers are decoded on first use (many operators never look at them). `json_cache` holds
    the payloads parsed by `Event.json`, by index.
    """

    __slots__ = (
        "batch",
        "n",
        "payloads",
        "p_start",
        "p_end",
        "times",
        "_k_start",
        "_k_end",
        "_header_list",
        "json_cache",
    )

    def __init__(self, batch):
        self.batch = batch
        self.times = times = array(I64, batch.times)
        self.n = len(times)
        self.payloads = batch.payloads
        self.p_end = u32s(batch.payload_ends)
        self.p_start = starts_of(self.p_end)
        self._k_start = None
        self._k_end = None
        self._header_list = None
        self.json_cache = {}

    def key(self, i):
        """Key of event `i` (empty: no key)."""
        starts, ends = self._key_spans()
        return self.batch.keys[starts[i] : ends[i]]

    def payload(self, i):
        """Payload of event `i`."""
        return self.payloads[self.p_start[i] : self.p_end[i]]

    def payloads_of(self, indexes):
        """The payloads of events `indexes`, as a list (C-level passes)."""
        p = self.payloads
        return list(
            map(
                p.__getitem__,
                map(
                    slice,
                    map(self.p_start.__getitem__, indexes),
                    map(self.p_end.__getitem__, indexes),
                ),
            )
        )

    def _key_spans(self):
        if self._k_end is None:
            self._k_end = u32s(self.batch.key_ends)
            self._k_start = starts_of(self._k_end)
        return self._k_start, self._k_end

    def keys_of(self, indexes):
        """The keys of events `indexes`, as a list (C-level passes, no per-event Python)."""
        starts, ends = self._key_spans()
        keys = self.batch.keys
        return list(
            map(
                keys.__getitem__,
                map(slice, map(starts.__getitem__, indexes), map(ends.__getitem__, indexes)),
            )
        )

    def header_list(self):
        """The packed headers of all events, in order."""
        if self._header_list is None:
            headers = self.batch.headers
            if not headers:
                self._header_list = [b""] * self.n
            else:
                ends = u32s(self.batch.header_ends)
                self._header_list = slices(headers, starts_of(ends), ends)
        return self._header_list

    def headers(self, i):
        """Packed headers of event `i`."""
        if not self.batch.headers:
            return b""
        return self.header_list()[i]


#: The fields of the WIT `batch` record, in order.
_FIELDS = (
    "payloads",
    "payload_ends",
    "keys",
    "key_ends",
    "times",
    "headers",
    "header_ends",
    "origins",
)

_identity_cache = {}


def _identity(n):
    """The origins column `0, 1, .., n-1`, packed (cached per size)."""
    b = _identity_cache.get(n)
    if b is None:
        if len(_identity_cache) > 64:
            _identity_cache.clear()
        b = _identity_cache[n] = array(U32, range(n)).tobytes()
    return b


class OutputBuilder:
    """The events a plugin emits during one call, packed into columns by `columns()`.

    Every output event has a payload and an origin (`payloads[j]`, `origins[j]`, appended by the
    caller for speed); a payload of None means the payload of input event `origins[j]` (a
    forwarded event: no slice is made unless needed, and when every input event is forwarded
    unchanged the input columns are returned as they are). It inherits key, time and headers
    from input event `origins[j]` unless `overrides[j] = (source, key, time, headers)` says
    otherwise: `source` is the input event to inherit from and `key`/`time`/`headers` (bytes,
    int, packed bytes) replace its fields when not None. `source = None` inherits nothing
    (empty key and headers, time 0).
    """

    __slots__ = ("src", "payloads", "origins", "overrides")

    def __init__(self, src):
        self.src = src
        self.payloads = []
        self.origins = []
        self.overrides = {}

    def columns(self):
        """The packed columns, in the order of the WIT `batch` record."""
        payloads, origins, overrides, src = self.payloads, self.origins, self.overrides, self.src
        m = len(payloads)
        if m == 0:
            return (b"", b"", b"", b"", b"", b"", b"", b"")
        origins_col = array(U32, origins).tobytes()
        identity = not overrides and src is not None and origins_col == _identity(src.n)
        forwarded = payloads.count(None)
        if forwarded:
            if identity and forwarded == m:
                return tuple(getattr(src.batch, f) for f in _FIELDS)
            payloads = [
                p if p is not None else s
                for p, s in zip(payloads, src.payloads_of(origins), strict=True)
            ]
        payloads_col = b"".join(payloads)
        payload_ends = pack_ends(payloads)
        if identity:
            # One output per input, nothing changed but payloads: reuse the input columns.
            b = src.batch
            return (
                payloads_col,
                payload_ends,
                b.keys,
                b.key_ends,
                b.times,
                b.headers,
                b.header_ends,
                origins_col,
            )
        if src is not None:
            times = list(map(src.times.__getitem__, origins))
        else:
            times = [0] * m
        src_has_keys = src is not None and bool(src.batch.keys)
        src_has_headers = src is not None and bool(src.batch.headers)
        keys = src.keys_of(origins) if src_has_keys else None
        headers = list(map(src.header_list().__getitem__, origins)) if src_has_headers else None
        for j, (source, key, time, hdrs) in overrides.items():
            if key is None:
                key = src.key(source) if source is not None and src_has_keys else b""
            if time is None:
                time = src.times[source] if source is not None else 0
            if hdrs is None:
                hdrs = src.headers(source) if source is not None and src_has_headers else b""
            if key and keys is None:
                keys = [b""] * m
            if keys is not None:
                keys[j] = key
            times[j] = time
            if hdrs and headers is None:
                headers = [b""] * m
            if headers is not None:
                headers[j] = hdrs
        zeros = bytes(4 * m)
        keys_col, key_ends = (b"".join(keys), pack_ends(keys)) if keys else (b"", zeros)
        if headers:
            headers_col, header_ends = b"".join(headers), pack_ends(headers)
        else:
            headers_col, header_ends = b"", zeros
        times_col = array(I64, times).tobytes()
        return (
            payloads_col,
            payload_ends,
            keys_col,
            key_ends,
            times_col,
            headers_col,
            header_ends,
            origins_col,
        )
