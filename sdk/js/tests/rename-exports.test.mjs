// rename-exports.mjs renames only top-level export names and copies every other byte.
import assert from "node:assert/strict";
import { test } from "node:test";
import { exportNames, renameExports } from "../rename-exports.mjs";

const enc = new TextEncoder();
const name = (s) => [enc.encode(s).length, ...enc.encode(s)];
const section = (id, body) => [id, body.length, ...body];
const PREAMBLE = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

function component() {
  return Uint8Array.from([
    ...PREAMBLE,
    ...section(0, [...name("custom"), 1, 2, 3]),
    // one export without and one with a type ascription (func, type index 5)
    ...section(11, [2, 0x00, ...name("init"), 0x01, 0, 0x00, 0x00, ...name("weir-init"), 0x01, 1, 0x01, 0x01, 5]),
    ...section(11, [1, 0x00, ...name("process"), 0x01, 2, 0x00]),
  ]);
}

test("renames in order and keeps every other byte", () => {
  const out = renameExports(component(), [["init", "componentize-qjs-init"], ["weir-init", "init"]], "test.wasm");
  assert.deepEqual(exportNames(out, "out"), ["componentize-qjs-init", "init", "process"]);
  const expected = Uint8Array.from([
    ...PREAMBLE,
    ...section(0, [...name("custom"), 1, 2, 3]),
    ...section(11, [2, 0x00, ...name("componentize-qjs-init"), 0x01, 0, 0x00, 0x00, ...name("init"), 0x01, 1, 0x01, 0x01, 5]),
    ...section(11, [1, 0x00, ...name("process"), 0x01, 2, 0x00]),
  ]);
  assert.deepEqual(out, expected);
});

test("refuses a missing name, a clash and a non-component", () => {
  assert.throws(() => renameExports(component(), [["nope", "x"]], "test.wasm"), /test.wasm: expected one top-level export named `nope`, found 0/);
  assert.throws(() => renameExports(component(), [["weir-init", "process"]], "test.wasm"), /an export named `process` exists/);
  assert.throws(() => renameExports(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), [], "core.wasm"), /core.wasm: not a WebAssembly component/);
});
