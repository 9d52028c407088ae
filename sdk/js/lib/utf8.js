// Part of weir.js (the JavaScript SDK): UTF-8 without TextEncoder/TextDecoder. Internal: plugins
// import "weir".

import { EventError } from "./host.js";

// ---------------------------------------------------------------------------------------------
// UTF-8 without TextEncoder/TextDecoder
//
// A "binary string" holds one byte per char (0..255). atob/btoa and the base64 typed-array
// methods convert bytes <-> binary strings natively; escape/decodeURIComponent and
// unescape/encodeURIComponent convert binary strings <-> UTF-8 text natively (and reject invalid
// UTF-8 / lone surrogates with a URIError). ASCII needs no conversion, and one regular-expression
// test tells whether a string is ASCII.

export const NATIVE_DECODER = typeof TextDecoder === "function" ? new TextDecoder("utf-8", { fatal: true }) : null;
export const NATIVE_ENCODER = typeof TextEncoder === "function" ? new TextEncoder() : null;
export const HAS_BASE64 = typeof Uint8Array.fromBase64 === "function" && typeof Uint8Array.prototype.toBase64 === "function";
// Anchored: one match attempt over the whole string, faster in QuickJS than searching for a non-ASCII char.
export const ASCII_ONLY = /^[\0-\x7f]*$/;
export const EMPTY = new Uint8Array(0);

/** The binary string of `bytes[start..end)`. */
export function binaryOf(bytes, start, end) {
  if (start === end) return "";
  const view = start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end);
  if (HAS_BASE64) return atob(view.toBase64());
  let s = "";
  for (let i = 0; i < view.length; i += 8192) {
    s += String.fromCharCode.apply(null, view.subarray(i, Math.min(i + 8192, view.length)));
  }
  return s;
}

/** Text from the binary string of its UTF-8 bytes; throws naming `what` on invalid UTF-8. */
export function textOfBinary(bin, what) {
  return ASCII_ONLY.test(bin) ? bin : decodeBinary(bin, what);
}

/** `textOfBinary` without the ASCII test (for a caller that knows `bin` is not ASCII). */
export function decodeBinary(bin, what) {
  try {
    return decodeURIComponent(escape(bin));
  } catch {
    throw new EventError(`${what} is not valid UTF-8`);
  }
}

/** The binary string of `text`'s UTF-8 bytes; throws naming `what` on a lone surrogate. */
export function binaryOfText(text, what) {
  return ASCII_ONLY.test(text) ? text : encodeBinary(text, what);
}

/** `binaryOfText` without the ASCII test (for a caller that knows `text` is not ASCII). */
export function encodeBinary(text, what) {
  try {
    return unescape(encodeURIComponent(text));
  } catch {
    throw new EventError(`${what} holds a lone surrogate and cannot be encoded as UTF-8`);
  }
}

const NON_ASCII_CHAR = /[^\0-\x7f]/g;

/**
 * Tells which slices of one string are ASCII in a single left-to-right pass, for callers that
 * look at its consecutive slices (the payloads of a batch, the output texts of a column): a
 * regular-expression scan costs ~35 ns per char in QuickJS, so each char is scanned at most
 * once, and a slice that ends before the next non-ASCII char found is ASCII without a scan of
 * its own. Slices asked out of order are correct, only scanned again.
 */
export class AsciiScan {
  constructor(str) {
    this.str = str;
    this.from = 0; // scanned from here...
    this.next = -2; // ...up to this non-ASCII char (-1: none to the end; -2: not scanned yet)
  }
  /** Whether `str[start..end)` is ASCII. */
  isAscii(start, end) {
    if (this.next === -2 || start < this.from || (this.next !== -1 && this.next < start)) {
      NON_ASCII_CHAR.lastIndex = start;
      const found = NON_ASCII_CHAR.exec(this.str);
      this.from = start;
      this.next = found === null ? -1 : found.index;
    }
    return this.next === -1 || this.next >= end;
  }
}

/** Bytes of a binary string. */
function bytesOfBinary(bin) {
  if (HAS_BASE64) return Uint8Array.fromBase64(btoa(bin));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Decodes UTF-8 `bytes[start..end)` (whole array by default); throws naming `what` if invalid. */
export function decodeUtf8(bytes, start = 0, end = bytes.length, what = "text") {
  if (NATIVE_DECODER) {
    try {
      return NATIVE_DECODER.decode(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
    } catch {
      throw new EventError(`${what} is not valid UTF-8`);
    }
  }
  return textOfBinary(binaryOf(bytes, start, end), what);
}

/** Encodes `text` as UTF-8. */
export function encodeUtf8(text, what = "text") {
  if (typeof text !== "string") throw new TypeError(`${what} must be a string, not ${typeof text}`);
  if (NATIVE_ENCODER) {
    // TextEncoder would replace a lone surrogate silently; refuse it as the QuickJS path does.
    if (typeof text.isWellFormed === "function" && !text.isWellFormed()) {
      throw new EventError(`${what} holds a lone surrogate and cannot be encoded as UTF-8`);
    }
    return NATIVE_ENCODER.encode(text);
  }
  return bytesOfBinary(binaryOfText(text, what));
}

/** Decodes UTF-8 replacing invalid sequences with U+FFFD (for keys shown to humans, like Rust's from_utf8_lossy). */
export function decodeUtf8Lossy(bytes) {
  try {
    return decodeUtf8(bytes);
  } catch {
    let s = "";
    for (let i = 0; i < bytes.length; ) {
      const b = bytes[i];
      const need = b < 0x80 ? 0 : b >= 0xc2 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf5 ? 3 : -1;
      if (need === 0) {
        s += String.fromCharCode(b);
        i += 1;
        continue;
      }
      if (need > 0 && i + need < bytes.length + 1) {
        try {
          s += decodeUtf8(bytes, i, i + need + 1);
          i += need + 1;
          continue;
        } catch {
          // fall through: one replacement char for the lead byte
        }
      }
      s += "\ufffd";
      i += 1;
    }
    return s;
  }
}
