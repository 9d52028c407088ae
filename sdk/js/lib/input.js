// Part of weir.js (the JavaScript SDK): numbers crossing the boundary, reading a packed input
// batch, events and described outputs. Internal: plugins import "weir".

import { host, EventError, messageOf } from "./host.js";
import { NATIVE_DECODER, EMPTY, AsciiScan, binaryOf, textOfBinary, decodeBinary, decodeUtf8, encodeUtf8, decodeUtf8Lossy } from "./utf8.js";

// ---------------------------------------------------------------------------------------------
// Numbers crossing the boundary: u32 columns and s64 times

/** A Uint32Array over a little-endian u32 column (Wasm and Node are little-endian). */
export function u32Column(bytes, what) {
  if (bytes.length % 4 !== 0) throw new Error(`malformed batch: column \`${what}\` has ${bytes.length} bytes, not a multiple of 4`);
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Uint32Array(b.buffer, b.byteOffset, b.length >> 2);
}

/** An Int32Array over a little-endian s64 column: value j is (lo = [2j] as u32, hi = [2j+1]). */
function s64Column(bytes, what) {
  if (bytes.length % 8 !== 0) throw new Error(`malformed batch: column \`${what}\` has ${bytes.length} bytes, not a multiple of 8`);
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Int32Array(b.buffer, b.byteOffset, b.length >> 2);
}

export const TWO_32 = 4294967296;

/**
 * Value `j` of an s64 column (`s64Column`) as a Number; throws beyond JavaScript's exact integer
 * range, naming `what`, with the message `s64ToNumber` gives.
 */
function s64At(col, j, what) {
  const hi = col[2 * j + 1];
  if (hi < 0x200000 && hi >= -0x200000) {
    const v = hi * TWO_32 + (col[2 * j] >>> 0);
    if (v !== -9007199254740992) return v; // -2^53 is exact but not a safe integer
  }
  const exact = new DataView(col.buffer, col.byteOffset).getBigInt64(8 * j, true);
  throw new EventError(`${what} ${exact} is beyond JavaScript's exact integer range (±2^53)`);
}

/** A WIT s64 (Number or BigInt depending on the toolchain) as a Number; throws beyond 2^53. */
export function s64ToNumber(v, what) {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new Error(`${what} ${v} is beyond JavaScript's exact integer range (±2^53)`);
    }
    return Number(v);
  }
  throw new TypeError(`${what} is a ${typeof v}, expected a number`);
}

/** A time given by plugin code (Number ms, BigInt or Date) as a Number, checked. */
export function timeValue(t, what) {
  if (typeof t === "number") {
    if (!Number.isSafeInteger(t)) throw new EventError(`${what} ${t} is not an integer number of milliseconds`);
    return t;
  }
  if (typeof t === "bigint") return s64ToNumber(t, what);
  if (t instanceof Date) return timeValue(t.getTime(), what);
  throw new EventError(`${what} must be a number of milliseconds since the Unix epoch, not ${typeof t}`);
}

/** A time as the toolchain wants a WIT s64 argument. */
export function s64Arg(ms) {
  return host.s64 === "bigint" ? BigInt(ms) : ms;
}

// ---------------------------------------------------------------------------------------------
// Reading a packed input batch

/** A packed batch from the host (well-formed by contract, wit/types.wit), read through views made once. */
export class BatchIn {
  constructor(b) {
    this.payloads = b.payloads;
    this.payloadEnds = u32Column(b.payloadEnds, "payload-ends");
    this.keys = b.keys;
    this.keyEnds = u32Column(b.keyEnds, "key-ends");
    this.times = b.times;
    this.times32 = s64Column(b.times, "times");
    this.headers = b.headers;
    this.headerEnds = u32Column(b.headerEnds, "header-ends");
    this.origins = u32Column(b.origins, "origins");
    this.length = b.times.length >> 3;
    // Binary strings of the payload and key columns, made on first use.
    this.payloadBin = null;
    this.payloadScan = null; // which payloads are ASCII, over payloadBin
    this.keyBin = null;
  }
  payloadStart(i) {
    return i === 0 ? 0 : this.payloadEnds[i - 1];
  }
  keyStart(i) {
    return i === 0 ? 0 : this.keyEnds[i - 1];
  }
  headerStart(i) {
    return i === 0 ? 0 : this.headerEnds[i - 1];
  }
  time(i) {
    const hi = this.times32[2 * i + 1];
    if (hi >= 0x200000 || hi < -0x200000) {
      const exact = new DataView(this.times.buffer, this.times.byteOffset).getBigInt64(8 * i, true);
      throw new EventError(`event time ${exact} is beyond JavaScript's exact integer range (±2^53)`);
    }
    return hi * TWO_32 + (this.times32[2 * i] >>> 0);
  }
  payloadText(i) {
    if (NATIVE_DECODER) return decodeUtf8(this.payloads, this.payloadStart(i), this.payloadEnds[i], "payload");
    if (this.payloadBin === null) {
      this.payloadBin = binaryOf(this.payloads, 0, this.payloads.length);
      this.payloadScan = new AsciiScan(this.payloadBin);
    }
    const start = this.payloadStart(i);
    const end = this.payloadEnds[i];
    const bin = this.payloadBin.substring(start, end);
    return this.payloadScan.isAscii(start, end) ? bin : decodeBinary(bin, "payload");
  }
  keyText(i) {
    return keyTextAt(this, i);
  }
}

/**
 * Key `i` of a packed key column (`col.keys`, `col.keyEnds`, `col.keyBin`) as text; null when
 * empty (no key); invalid UTF-8 becomes U+FFFD. Without a native decoder, the column's binary
 * string is made once (on first use) and kept in `col.keyBin`.
 */
function keyTextAt(col, i) {
  const s = i === 0 ? 0 : col.keyEnds[i - 1];
  const e = col.keyEnds[i];
  if (s === e) return null;
  if (NATIVE_DECODER) return decodeUtf8Lossy(col.keys.subarray(s, e));
  if (col.keyBin === null) col.keyBin = binaryOf(col.keys, 0, col.keys.length);
  try {
    return textOfBinary(col.keyBin.substring(s, e), "key");
  } catch {
    return decodeUtf8Lossy(col.keys.subarray(s, e));
  }
}

/**
 * The packed `windows` record `finish` gets from the host (wit/types.wit): window `i` has the key
 * `keys[end(i-1)..end(i)]` (empty: no key) and the bounds `start`, `end`, two s64 at
 * `bounds[16i..16i+16)`.
 */
export class WindowsIn {
  constructor(w) {
    this.keys = w.keys;
    this.keyEnds = u32Column(w.keyEnds, "key-ends");
    this.bounds = s64Column(w.bounds, "bounds");
    this.length = this.keyEnds.length;
    if (this.bounds.length !== 4 * this.length) {
      throw new Error(`malformed windows: \`bounds\` holds ${this.bounds.length >> 2} windows, \`key-ends\` ${this.length}`);
    }
    this.keyBin = null;
  }
  /** Key of window `i` as text; null when it has none (invalid UTF-8 becomes U+FFFD). */
  keyText(i) {
    return keyTextAt(this, i);
  }
  /** Bounds of window `i` as `{ start, end }` in ms (Numbers); throws beyond ±2^53. */
  window(i) {
    return { start: s64At(this.bounds, 2 * i, "window start"), end: s64At(this.bounds, 2 * i + 1, "window end") };
  }
}

/** Parses one event's packed headers into [name, value] text pairs. */
function parseHeaders(bytes, start, end) {
  const out = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  let p = start;
  while (p < end) {
    if (p + 4 > end) throw new EventError("malformed headers: truncated name length");
    const nl = view.getUint32(p, true);
    p += 4;
    if (p + nl + 4 > end) throw new EventError("malformed headers: truncated name");
    const name = decodeUtf8(bytes, p, p + nl, "header name");
    p += nl;
    const vl = view.getUint32(p, true);
    p += 4;
    if (p + vl > end) throw new EventError("malformed headers: truncated value");
    out.push([name, decodeUtf8(bytes, p, p + vl, `header ${name}`)]);
    p += vl;
  }
  return out;
}

const UNPARSED = Symbol("unparsed");

/**
 * One input event: a lazy view into the packed batch. Fields are read on access, so an operator
 * pays only for what it looks at. Plain data; safe to keep after the call returns.
 */
export class Event {
  constructor(batch, index) {
    this._batch = batch;
    /** Position of this event in its batch. */
    this.index = index;
    this._json = UNPARSED;
  }
  /** The key bytes (empty: no key). */
  get key() {
    const b = this._batch;
    const s = b.keyStart(this.index);
    const e = b.keyEnds[this.index];
    return s === e ? EMPTY : b.keys.subarray(s, e);
  }
  /** The key as text; null when the event has no key (invalid UTF-8 becomes U+FFFD). */
  get keyString() {
    return this._batch.keyText(this.index);
  }
  /** Event time, milliseconds since the Unix epoch (a Number). */
  get time() {
    return this._batch.time(this.index);
  }
  /** The payload bytes (a view into the batch: copy it to keep it past the call). */
  get payload() {
    const b = this._batch;
    return b.payloads.subarray(b.payloadStart(this.index), b.payloadEnds[this.index]);
  }
  /** The payload as UTF-8 text; throws an EventError if it is not valid UTF-8. */
  get text() {
    return this._batch.payloadText(this.index);
  }
  /** The payload parsed as JSON (parsed once); throws an EventError naming the problem. */
  get json() {
    if (this._json === UNPARSED) {
      const text = this.text;
      try {
        this._json = JSON.parse(text);
      } catch (e) {
        throw new EventError(`payload is not JSON: ${messageOf(e)}`);
      }
    }
    return this._json;
  }
  /** The headers as [name, value] text pairs, in order (names may repeat). */
  get headers() {
    const b = this._batch;
    return parseHeaders(b.headers, b.headerStart(this.index), b.headerEnds[this.index]);
  }
  /** The first value of header `name`, or null. */
  header(name) {
    for (const [n, v] of this.headers) if (n === name) return v;
    return null;
  }
  /**
   * An output event derived from this one: `changes` may set `payload`, `key`, `time` and
   * `headers`; everything not set is inherited (the payload too).
   */
  with(changes) {
    return new Output(this, changes, "event.with()");
  }
}

// ---------------------------------------------------------------------------------------------
// Describing outputs

const OUTPUT_FIELDS = ["payload", "key", "time", "headers"];

/** An output event described by plugin code (`event.with({...})` or `output({...})`). */
export class Output {
  constructor(base, fields, what) {
    if (fields === null || typeof fields !== "object") throw new TypeError(`${what} takes an object with ${OUTPUT_FIELDS.join(", ")}`);
    for (const k of Object.keys(fields)) {
      if (!OUTPUT_FIELDS.includes(k)) throw new TypeError(`${what}: unknown field \`${k}\` (expected ${OUTPUT_FIELDS.join(", ")})`);
    }
    this.base = base;
    this.hasPayload = "payload" in fields;
    this.payload = fields.payload;
    this.hasKey = "key" in fields;
    this.key = fields.key;
    this.hasTime = "time" in fields;
    this.time = fields.time;
    this.hasHeaders = "headers" in fields;
    this.headers = fields.headers;
    if (this.hasPayload && (this.payload === undefined || this.payload === null)) {
      throw new TypeError(`${what}: payload is ${this.payload}; drop the event by returning null instead`);
    }
  }
}

/**
 * An output event built from scratch (for `onTimer`, or to emit an event unrelated to the input):
 * `{ payload, key?, time?, headers? }`. Unset fields default to the current input event's (in
 * `transform`/`onEvent`) or to the timer's key and time (in `onTimer`).
 */
export function output(fields) {
  const out = new Output(null, fields, "output()");
  if (!out.hasPayload) throw new TypeError("output(): `payload` is required");
  return out;
}

/** Key bytes of a key given by plugin code: text, bytes, or null/"" for "no key". */
export function keyBytes(k) {
  if (k === null || k === undefined || k === "") return EMPTY;
  if (typeof k === "string") return encodeUtf8(k, "key");
  if (k instanceof Uint8Array) return k;
  throw new EventError(`output key must be a string or a Uint8Array, not ${typeof k}`);
}

/** Packed header entries of headers given by plugin code: [[name, value], ...], an object or a Map. */
export function packHeaders(h) {
  if (h === null || h === undefined) return EMPTY;
  const entries = Array.isArray(h) ? h : h instanceof Map ? [...h.entries()] : typeof h === "object" ? Object.entries(h) : null;
  if (entries === null) throw new EventError("output headers must be [[name, value], ...], an object or a Map");
  const parts = [];
  let total = 0;
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length !== 2) throw new EventError("each output header must be a [name, value] pair");
    const name = encodeUtf8(String(entry[0]), "header name");
    const value = entry[1] instanceof Uint8Array ? entry[1] : encodeUtf8(String(entry[1]), "header value");
    parts.push(name, value);
    total += 8 + name.length + value.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let p = 0;
  for (const part of parts) {
    view.setUint32(p, part.length, true);
    out.set(part, p + 4);
    p += 4 + part.length;
  }
  return out;
}
