// Part of weir.js (the JavaScript SDK): building packed output batches. Internal: plugins import
// "weir".

import { EventError, messageOf } from "./host.js";
import { NATIVE_ENCODER, HAS_BASE64, EMPTY, AsciiScan, encodeBinary } from "./utf8.js";
import { TWO_32, timeValue, Event, Output, output, keyBytes, packHeaders } from "./input.js";

// ---------------------------------------------------------------------------------------------
// Building packed output

/** A growable byte buffer. */
class ByteBuf {
  constructor(capacity) {
    this.bytes = new Uint8Array(capacity > 64 ? capacity : 64);
    this.length = 0;
  }
  reserve(extra) {
    const need = this.length + extra;
    if (need <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < need) cap *= 2;
    const grown = new Uint8Array(cap);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
  /** Appends `src[start..end)`. Short runs are copied in a loop: a subarray costs more. */
  push(src, start, end) {
    const n = end - start;
    if (n <= 0) return;
    this.reserve(n);
    const dst = this.bytes;
    let p = this.length;
    if (n <= 8) {
      for (let i = start; i < end; i++) dst[p++] = src[i];
    } else {
      dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), p);
    }
    this.length += n;
  }
  /** Appends a binary string (one byte per char). */
  pushBinary(bin) {
    const n = bin.length;
    if (n === 0) return;
    this.reserve(n);
    if (HAS_BASE64) {
      this.bytes.subarray(this.length, this.length + n).setFromBase64(btoa(bin));
    } else {
      const dst = this.bytes;
      for (let i = 0, p = this.length; i < n; i++) dst[p++] = bin.charCodeAt(i);
    }
    this.length += n;
  }
  view() {
    return this.bytes.subarray(0, this.length);
  }
}

/** A Uint32Array of at least `min` words holding the first `used` words of `words`. */
function growU32(words, used, min) {
  let cap = words.length * 2;
  while (cap < min) cap *= 2;
  const grown = new Uint32Array(cap);
  grown.set(used === words.length ? words : words.subarray(0, used));
  return grown;
}

/** The bytes of the first `count` words of a u32 column (little-endian in memory). */
function u32Bytes(words, count) {
  return new Uint8Array(words.buffer, words.byteOffset, count * 4);
}

/** Appends end offsets `srcEnds[lo..hi)` shifted by `delta` at `dst[at..]`. */
function putEnds(dst, at, srcEnds, lo, hi, delta) {
  if (delta === 0) {
    dst.set(srcEnds.subarray(lo, hi), at);
  } else {
    for (let i = lo; i < hi; i++) dst[at++] = srcEnds[i] + delta;
  }
}

/**
 * A column of variable-length values (payloads or accumulators) and its u32 end offsets. Text
 * values are kept as strings and converted to UTF-8 together (one native conversion per batch
 * instead of one per value): they are always the last `pending.length` values, since appending
 * bytes converts pending text first. When a pending text cannot be encoded, `failed` is set to
 * its value index (so a caller can tell which value it was: the conversion may run while a later
 * value is appended) and the error is thrown.
 */
export class ValueColumn {
  constructor(bytesHint, countHint) {
    this.data = new ByteBuf(bytesHint);
    this.ends = new Uint32Array(countHint > 16 ? countHint : 16);
    this.count = 0;
    this.pending = [];
    this.failed = -1;
  }
  pushBytes(src, start, end) {
    if (this.pending.length > 0) this.flushText();
    this.data.push(src, start, end);
    if (this.count === this.ends.length) this.ends = growU32(this.ends, this.count, this.count + 1);
    this.ends[this.count++] = this.data.length;
  }
  pushText(text) {
    this.pending.push(text);
    if (this.count === this.ends.length) this.ends = growU32(this.ends, this.count, this.count + 1);
    this.count++; // its end offset is set by flushText
  }
  /** Appends values `lo..hi` of a packed input column, ends rebased. */
  pushRun(src, srcEnds, lo, hi) {
    if (this.pending.length > 0) this.flushText();
    const start = lo === 0 ? 0 : srcEnds[lo - 1];
    const delta = this.data.length - start;
    this.data.push(src, start, srcEnds[hi - 1]);
    const n = hi - lo;
    if (this.count + n > this.ends.length) this.ends = growU32(this.ends, this.count, this.count + n);
    putEnds(this.ends, this.count, srcEnds, lo, hi, delta);
    this.count += n;
  }
  flushText() {
    const texts = this.pending;
    const k = texts.length;
    const ends = this.ends;
    let slot = this.count - k;
    let at = this.data.length;
    if (NATIVE_ENCODER && !HAS_BASE64) {
      // SpiderMonkey: encodeInto writes UTF-8 straight into the column.
      const data = this.data;
      for (let i = 0; i < k; i++) {
        const text = texts[i];
        if (typeof text.isWellFormed === "function" && !text.isWellFormed()) {
          this.failed = slot;
          throw new EventError("output holds a lone surrogate and cannot be encoded as UTF-8");
        }
        data.reserve(3 * text.length);
        data.length += NATIVE_ENCODER.encodeInto(text, data.bytes.subarray(data.length)).written;
        ends[slot++] = data.length;
      }
      this.pending = [];
      return;
    }
    const joined = k === 1 ? texts[0] : texts.join("");
    const scan = new AsciiScan(joined);
    if (scan.isAscii(0, joined.length)) {
      this.data.pushBinary(joined);
      for (let i = 0; i < k; i++) ends[slot++] = at += texts[i].length;
    } else {
      const bins = new Array(k);
      for (let i = 0, textStart = 0; i < k; i++) {
        const text = texts[i];
        const textEnd = textStart + text.length;
        try {
          bins[i] = scan.isAscii(textStart, textEnd) ? text : encodeBinary(text, "output");
        } catch (e) {
          this.failed = slot;
          throw e;
        }
        ends[slot++] = at += bins[i].length;
        textStart = textEnd;
      }
      this.data.pushBinary(bins.join(""));
    }
    this.pending = [];
  }
  finish() {
    if (this.pending.length > 0) this.flushText();
    return [this.data.view(), u32Bytes(this.ends, this.count)];
  }
}

/** Serializes a payload value given by plugin code into `col`: bytes, text, or JSON of anything else. */
export function pushPayload(col, value) {
  if (typeof value === "string") return col.pushText(value);
  if (value instanceof Uint8Array) return col.pushBytes(value, 0, value.length);
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return col.pushBytes(bytes, 0, bytes.length);
  }
  if (value instanceof ArrayBuffer) {
    const bytes = new Uint8Array(value);
    return col.pushBytes(bytes, 0, bytes.length);
  }
  if (value !== null && typeof value === "object" && typeof value.then === "function") {
    throw new EventError("operator functions must be synchronous: got a Promise");
  }
  let json;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new EventError(`cannot serialize output as JSON: ${messageOf(e)}`);
  }
  if (json === undefined) throw new EventError(`cannot serialize output as JSON: a ${typeof value} has no JSON form`);
  col.pushText(json);
}

/**
 * The packed `results` record of `finish` (wit/types.wit): payloads, each with the index of the
 * window it is a result of. Windows are pushed in order, so origins are non-decreasing.
 */
export class ResultsOut {
  constructor(windows) {
    this.payloads = new ValueColumn(64 * windows, windows);
    this.origins = new Uint32Array(windows > 16 ? windows : 16);
  }

  /** Appends payload `value` (bytes, text or a JSON value, as `pushPayload`) of window `origin`. */
  push(value, origin) {
    const col = this.payloads;
    pushPayload(col, value);
    const n = col.count;
    if (n > this.origins.length) this.origins = growU32(this.origins, n - 1, n);
    this.origins[n - 1] = origin;
  }

  /**
   * The window whose payload failed to be encoded, when the error just thrown by `push` or
   * `finish` came from converting text deferred from an earlier payload; -1 otherwise.
   */
  failedOrigin() {
    const slot = this.payloads.failed;
    return slot < 0 ? -1 : this.origins[slot];
  }

  /** The WIT `results` record. */
  finish() {
    const [payloads, payloadEnds] = this.payloads.finish();
    return { payloads, payloadEnds, origins: u32Bytes(this.origins, this.payloads.count) };
  }
}

/**
 * The packed output batch of one call, with the origin of every output event. The fixed-size
 * columns are typed arrays written in place (`n` events so far, room for `cap`).
 */
export class BatchOut {
  constructor(input) {
    const cap = input && input.length > 16 ? input.length : 16;
    this.input = input;
    this.n = 0;
    this.cap = cap;
    this.payloads = new ValueColumn(input ? input.payloads.length + 64 : 256, cap);
    this.keys = new ByteBuf(input ? input.keys.length + 16 : 64);
    this.keyEnds = new Uint32Array(cap);
    this.times = new Int32Array(2 * cap);
    this.headers = new ByteBuf(input ? input.headers.length + 16 : 64);
    this.headerEnds = new Uint32Array(cap);
    this.origins = new Uint32Array(cap);
    // Input events lo..hi forwarded unchanged and not yet copied.
    this.runLo = 0;
    this.runHi = 0;
  }

  /** Makes room for `extra` more events. */
  reserve(extra) {
    const need = this.n + extra;
    if (need <= this.cap) return;
    const n = this.n;
    this.keyEnds = growU32(this.keyEnds, n, need);
    this.headerEnds = growU32(this.headerEnds, n, need);
    this.origins = growU32(this.origins, n, need);
    this.cap = this.keyEnds.length;
    const times = new Int32Array(2 * this.cap);
    times.set(this.times.subarray(0, 2 * n));
    this.times = times;
  }

  /** Emits what the operator returned for input event `event` (null: nothing). */
  emit(event, result) {
    if (result === null) return;
    if (result === event) return this.forward(event.index);
    if (typeof result === "string") {
      if (this.runHi > this.runLo) this.flushRun();
      this.payloads.pushText(result);
      return this.finishEvent(event.index, event.index);
    }
    if (result === undefined) {
      throw new EventError("the operator returned undefined: return null to drop the event, or the event, a payload or an array of outputs");
    }
    if (Array.isArray(result)) {
      for (let k = 0; k < result.length; k++) {
        const r = result[k];
        if (r === null) continue;
        if (r === undefined) throw new EventError(`element ${k} of the returned array is undefined`);
        this.emitOne(event, Array.isArray(r) ? new Output(event, { payload: r }, "array element") : r);
      }
      return;
    }
    this.emitOne(event, result);
  }

  emitOne(event, r) {
    if (r === event) return this.forward(event.index);
    if (r instanceof Output) return this.pushOutput(event, r.base ?? event, r);
    if (r instanceof Event) return this.pushOutput(event, r, null);
    if (this.runHi > this.runLo) this.flushRun();
    pushPayload(this.payloads, r);
    this.finishEvent(event.index, event.index);
  }

  /** Re-emits input event `i` unchanged (copied later, as part of a run). */
  forward(i) {
    if (this.runHi === i && this.runHi > this.runLo) {
      this.runHi++;
    } else {
      this.flushRun();
      this.runLo = i;
      this.runHi = i + 1;
    }
  }

  /** Copies the pending run of forwarded input events, column by column. */
  flushRun() {
    const lo = this.runLo;
    const hi = this.runHi;
    if (lo >= hi) return;
    this.runLo = this.runHi = 0;
    const inp = this.input;
    const count = hi - lo;
    this.reserve(count);
    const at = this.n;
    this.payloads.pushRun(inp.payloads, inp.payloadEnds, lo, hi);
    pushRunInto(this.keys, this.keyEnds, at, inp.keys, inp.keyEnds, lo, hi);
    pushRunInto(this.headers, this.headerEnds, at, inp.headers, inp.headerEnds, lo, hi);
    this.times.set(inp.times32.subarray(2 * lo, 2 * hi), 2 * at);
    this.origins.set(inp.origins.subarray(lo, hi), at);
    this.n += count;
  }

  /**
   * Ends the output event whose payload was just written, with the key, time and headers of
   * input event `from`.
   */
  finishEvent(from, origin) {
    if (this.n === this.cap) this.reserve(1);
    const n = this.n;
    const inp = this.input;
    const keys = this.keys;
    keys.push(inp.keys, from === 0 ? 0 : inp.keyEnds[from - 1], inp.keyEnds[from]);
    this.keyEnds[n] = keys.length;
    this.times[2 * n] = inp.times32[2 * from];
    this.times[2 * n + 1] = inp.times32[2 * from + 1];
    const hs = from === 0 ? 0 : inp.headerEnds[from - 1];
    const he = inp.headerEnds[from];
    if (he > hs) this.headers.push(inp.headers, hs, he);
    this.headerEnds[n] = this.headers.length;
    this.origins[n] = origin;
    this.n = n + 1;
  }

  /**
   * Ends the output event whose payload was just written with explicit `key` bytes, `time` (ms)
   * and packed `headers`.
   */
  finishEventWith(key, time, headers, origin) {
    if (this.n === this.cap) this.reserve(1);
    const n = this.n;
    this.keys.push(key, 0, key.length);
    this.keyEnds[n] = this.keys.length;
    const hi = Math.floor(time / TWO_32);
    this.times[2 * n] = (time - hi * TWO_32) | 0;
    this.times[2 * n + 1] = hi | 0;
    this.headers.push(headers, 0, headers.length);
    this.headerEnds[n] = this.headers.length;
    this.origins[n] = origin;
    this.n = n + 1;
  }

  /** Emits output `o` (or a copy of event `base` when `o` is null) produced by input event `originEvent`. */
  pushOutput(originEvent, base, o) {
    if (this.runHi > this.runLo) this.flushRun();
    const bb = base._batch;
    const bi = base.index;
    if (o !== null && o.hasPayload) pushPayload(this.payloads, o.payload);
    else this.payloads.pushBytes(bb.payloads, bi === 0 ? 0 : bb.payloadEnds[bi - 1], bb.payloadEnds[bi]);
    if (bb === this.input && (o === null || (!o.hasKey && !o.hasTime && !o.hasHeaders))) {
      return this.finishEvent(bi, originEvent.index);
    }
    const key = o !== null && o.hasKey ? keyBytes(o.key) : bb.keys.subarray(bi === 0 ? 0 : bb.keyEnds[bi - 1], bb.keyEnds[bi]);
    const time = o !== null && o.hasTime ? timeValue(o.time, "output time") : bb.time(bi);
    const headers =
      o !== null && o.hasHeaders ? packHeaders(o.headers) : bb.headers.subarray(bi === 0 ? 0 : bb.headerEnds[bi - 1], bb.headerEnds[bi]);
    this.finishEventWith(key, time, headers, originEvent.index);
  }

  /** Emits an output of `onTimer`: defaults are the timer's key and time, no headers, origin 0. */
  pushTimerOutput(timerKey, timerTime, r) {
    const o = r instanceof Output ? r : null;
    if (r instanceof Event) throw new EventError("onTimer cannot return an input event; return a payload or output({...})");
    if (o !== null && o.base !== null) throw new EventError("onTimer has no input event: use output({...}), not event.with()");
    pushPayload(this.payloads, o === null ? r : o.payload);
    const key = o !== null && o.hasKey ? keyBytes(o.key) : timerKey;
    const time = o !== null && o.hasTime ? timeValue(o.time, "output time") : timerTime;
    const headers = o !== null && o.hasHeaders ? packHeaders(o.headers) : EMPTY;
    this.finishEventWith(key, time, headers, 0);
  }

  /** The WIT `batch` record. */
  finish() {
    this.flushRun();
    const [payloads, payloadEnds] = this.payloads.finish();
    const n = this.n;
    return {
      payloads,
      payloadEnds,
      keys: this.keys.view(),
      keyEnds: u32Bytes(this.keyEnds, n),
      times: new Uint8Array(this.times.buffer, 0, n * 8),
      headers: this.headers.view(),
      headerEnds: u32Bytes(this.headerEnds, n),
      origins: u32Bytes(this.origins, n),
    };
  }
}

/** Appends the data of input events lo..hi to `data` and their rebased ends at `ends[at..]`. */
function pushRunInto(data, ends, at, src, srcEnds, lo, hi) {
  const start = lo === 0 ? 0 : srcEnds[lo - 1];
  const delta = data.length - start;
  data.push(src, start, srcEnds[hi - 1]);
  putEnds(ends, at, srcEnds, lo, hi, delta);
}
