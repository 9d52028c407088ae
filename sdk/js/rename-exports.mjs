// Renames top-level exports of a WebAssembly component, in place of a missing `wasm-tools` step.
//
// Why it exists: every component componentize-qjs (0.4.x) writes exports a function named `init`
// of its own (its QuickJS runtime's initializer), so a world that also exports `init` — every weir
// world does — cannot be built directly ("duplicate items detected" inside wit-component's
// linker). build.sh therefore builds against a copy of the WIT whose `export init` is named
// `weir-init`, then calls this tool to rename the runtime's `init` to `componentize-qjs-init` and
// `weir-init` to `init`. Only names in the component's top-level export sections change; index
// spaces, types and nested components are copied byte for byte.
//
// Usage: node rename-exports.mjs <in.wasm> <out.wasm> <old>=<new> [<old>=<new> ...]
// Renames are applied in the order given; each must match exactly one top-level export, and the
// resulting names must be unique.

import { readFileSync, writeFileSync } from "node:fs";

const COMPONENT_PREAMBLE = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const EXPORT_SECTION = 11;

/** A reader over `bytes` that names `what` (the input) in its errors. */
class Reader {
  constructor(bytes, pos, end, what) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
    this.what = what;
  }
  fail(msg) {
    throw new Error(`${this.what}: ${msg} at byte offset ${this.pos}`);
  }
  byte() {
    if (this.pos >= this.end) this.fail("unexpected end of section");
    return this.bytes[this.pos++];
  }
  u32() {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
      if (shift > 28) this.fail("LEB128 u32 too long");
    }
  }
  /** A signed LEB128 (s33 type index): only its length matters here. */
  skipSigned() {
    while (this.byte() & 0x80) {}
  }
  name() {
    const len = this.u32();
    if (this.pos + len > this.end) this.fail("name runs past the end of its section");
    const s = new TextDecoder("utf-8", { fatal: true }).decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
}

function encodeU32(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function encodeName(s) {
  const bytes = new TextEncoder().encode(s);
  return [...encodeU32(bytes.length), ...bytes];
}

/** Skips an `externdesc` (component binary format) at the reader's position. */
function skipExternDesc(r) {
  const kind = r.byte();
  switch (kind) {
    case 0x00: // core module: 0x11 typeidx
      if (r.byte() !== 0x11) r.fail("unexpected core sort in externdesc");
      r.u32();
      return;
    case 0x01: // func typeidx
    case 0x04: // component typeidx
    case 0x05: // instance typeidx
      r.u32();
      return;
    case 0x02: { // value bound
      const b = r.byte();
      if (b === 0x00) r.u32();
      else if (b === 0x01) r.skipSigned(); // valtype: a primitive (one byte) or an s33 type index
      else r.fail(`unknown value bound 0x${b.toString(16)}`);
      return;
    }
    case 0x03: { // type bound
      const b = r.byte();
      if (b === 0x00) r.u32();
      else if (b !== 0x01) r.fail(`unknown type bound 0x${b.toString(16)}`);
      return;
    }
    default:
      r.fail(`unknown externdesc kind 0x${kind.toString(16)}`);
  }
}

/** Re-encodes one export section's contents with `rename(name)` applied to each export name. */
function rewriteExportSection(bytes, start, end, rename, what) {
  const r = new Reader(bytes, start, end, what);
  const count = r.u32();
  const out = [...encodeU32(count)];
  for (let i = 0; i < count; i++) {
    const form = r.byte(); // 0x00: plain name; 0x01: name followed by a version suffix
    if (form !== 0x00 && form !== 0x01) r.fail(`unknown export name form 0x${form.toString(16)}`);
    const name = r.name();
    const restStart = r.pos;
    if (form === 0x01) r.name();
    const sort = r.byte();
    if (sort === 0x00) r.byte(); // core sort
    r.u32(); // index
    const hasDesc = r.byte();
    if (hasDesc === 0x01) skipExternDesc(r);
    else if (hasDesc !== 0x00) r.fail("malformed optional externdesc");
    out.push(form, ...encodeName(rename(name)));
    for (let p = restStart; p < r.pos; p++) out.push(bytes[p]);
  }
  if (r.pos !== end) r.fail("trailing bytes after the exports");
  return out;
}

/** Lists the component's top-level export names. */
export function exportNames(bytes, what) {
  const names = [];
  rewrite(bytes, (n) => (names.push(n), n), what);
  return names;
}

/** Returns a copy of component `bytes` with every top-level export name passed through `rename`. */
export function rewrite(bytes, rename, what) {
  if (bytes.length < 8 || COMPONENT_PREAMBLE.some((b, i) => bytes[i] !== b)) {
    throw new Error(`${what}: not a WebAssembly component (wrong preamble)`);
  }
  const chunks = [bytes.subarray(0, 8)];
  let pos = 8;
  while (pos < bytes.length) {
    const r = new Reader(bytes, pos + 1, bytes.length, what);
    const id = bytes[pos];
    const size = r.u32();
    const body = r.pos;
    if (body + size > bytes.length) r.fail(`section ${id} runs past the end of the file`);
    if (id === EXPORT_SECTION) {
      const content = rewriteExportSection(bytes, body, body + size, rename, what);
      chunks.push(Uint8Array.from([id, ...encodeU32(content.length), ...content]));
    } else {
      chunks.push(bytes.subarray(pos, body + size));
    }
    pos = body + size;
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Applies `renames` (`[[old, new], ...]`, in order) to `bytes`; each old name must exist once. */
export function renameExports(bytes, renames, what) {
  let current = bytes;
  exportNames(current, what); // refuses a file that is not a component even with nothing to rename
  for (const [from, to] of renames) {
    const names = exportNames(current, what);
    const hits = names.filter((n) => n === from).length;
    if (hits !== 1) {
      throw new Error(`${what}: expected one top-level export named \`${from}\`, found ${hits} (exports: ${names.join(", ")})`);
    }
    if (names.includes(to)) {
      throw new Error(`${what}: cannot rename \`${from}\` to \`${to}\`: an export named \`${to}\` exists`);
    }
    current = rewrite(current, (n) => (n === from ? to : n), what);
  }
  return current;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [input, output, ...pairs] = process.argv.slice(2);
  if (!input || !output || pairs.length === 0) {
    console.error("usage: node rename-exports.mjs <in.wasm> <out.wasm> <old>=<new> [...]");
    process.exit(2);
  }
  const renames = pairs.map((p) => {
    const eq = p.indexOf("=");
    if (eq <= 0) {
      console.error(`rename-exports: argument \`${p}\` is not of the form old=new`);
      process.exit(2);
    }
    return [p.slice(0, eq), p.slice(eq + 1)];
  });
  try {
    writeFileSync(output, renameExports(readFileSync(input), renames, input));
  } catch (e) {
    console.error(`rename-exports: ${e.message}`);
    process.exit(1);
  }
}
