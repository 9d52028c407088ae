// Runs the SDK suite on the code path QuickJS (componentize-qjs) takes: no TextEncoder/TextDecoder,
// UTF-8 through atob/btoa and the base64 typed-array methods (polyfilled here when Node lacks them).
import { Buffer } from "node:buffer";
import { defineTests } from "./suite.mjs";

const savedDecoder = globalThis.TextDecoder;
const savedEncoder = globalThis.TextEncoder;
if (typeof Uint8Array.fromBase64 !== "function") {
  Uint8Array.fromBase64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
  Uint8Array.prototype.toBase64 = function () {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString("base64");
  };
  Uint8Array.prototype.setFromBase64 = function (s) {
    const bytes = Buffer.from(s, "base64");
    this.set(bytes);
    return { read: s.length, written: bytes.length };
  };
}
delete globalThis.TextDecoder;
delete globalThis.TextEncoder;
// The SDK (lib/utf8.js) picks its UTF-8 path when first evaluated: here, in this test process,
// with the encoders removed.
const weir = await import("../weir.js");
globalThis.TextDecoder = savedDecoder;
globalThis.TextEncoder = savedEncoder;

defineTests(weir, "QuickJS UTF-8 path");
