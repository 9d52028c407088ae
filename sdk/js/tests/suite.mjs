// The SDK's behaviour, written once and run against both UTF-8 code paths (see weir.test.mjs and
// weir-quickjs.test.mjs): each test packs input the way the host does, calls the world functions
// the component exports, and unpacks what they return.

import assert from "node:assert/strict";
import { test } from "node:test";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Packs events `{ key?, time, payload, headers?: [[n, v]] }` as the host does (wit/types.wit). */
export function packBatch(events) {
  const n = events.length;
  const payloadEnds = new DataView(new ArrayBuffer(4 * n));
  const keyEnds = new DataView(new ArrayBuffer(4 * n));
  const headerEnds = new DataView(new ArrayBuffer(4 * n));
  const origins = new DataView(new ArrayBuffer(4 * n));
  const times = new DataView(new ArrayBuffer(8 * n));
  const payloads = [];
  const keys = [];
  const headers = [];
  let pl = 0, kl = 0, hl = 0;
  events.forEach((e, i) => {
    const p = typeof e.payload === "string" ? enc.encode(e.payload) : e.payload;
    const k = enc.encode(e.key ?? "");
    const h = [];
    for (const [name, value] of e.headers ?? []) {
      for (const part of [enc.encode(name), enc.encode(value)]) {
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, part.length, true);
        h.push(len, part);
      }
    }
    payloads.push(p);
    keys.push(k);
    headers.push(...h);
    pl += p.length;
    kl += k.length;
    hl += h.reduce((a, b) => a + b.length, 0);
    payloadEnds.setUint32(4 * i, pl, true);
    keyEnds.setUint32(4 * i, kl, true);
    headerEnds.setUint32(4 * i, hl, true);
    origins.setUint32(4 * i, i, true);
    times.setBigInt64(8 * i, BigInt(e.time), true);
  });
  const cat = (parts) => {
    const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
    let o = 0;
    for (const part of parts) {
      out.set(part, o);
      o += part.length;
    }
    return out;
  };
  const bytes = (dv) => new Uint8Array(dv.buffer);
  return {
    payloads: cat(payloads),
    payloadEnds: bytes(payloadEnds),
    keys: cat(keys),
    keyEnds: bytes(keyEnds),
    times: bytes(times),
    headers: cat(headers),
    headerEnds: bytes(headerEnds),
    origins: bytes(origins),
  };
}

/** Unpacks a returned batch, checking its layout as the host does. */
export function unpackBatch(b) {
  const n = b.times.length / 8;
  assert.ok(Number.isInteger(n), "times is a whole number of s64");
  const u32 = (col, i) => new DataView(col.buffer, col.byteOffset, col.byteLength).getUint32(4 * i, true);
  for (const [name, col, data] of [["payloadEnds", b.payloadEnds, b.payloads], ["keyEnds", b.keyEnds, b.keys], ["headerEnds", b.headerEnds, b.headers]]) {
    assert.equal(col.length, 4 * n, `${name} length`);
    let prev = 0;
    for (let i = 0; i < n; i++) {
      assert.ok(u32(col, i) >= prev, `${name} non-decreasing`);
      prev = u32(col, i);
    }
    assert.equal(prev, data.length, `${name} covers the data`);
  }
  const slice = (data, ends, i) => data.subarray(i === 0 ? 0 : u32(ends, i - 1), u32(ends, i));
  const out = [];
  for (let i = 0; i < n; i++) {
    const hb = slice(b.headers, b.headerEnds, i);
    const hv = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
    const headers = [];
    for (let p = 0; p < hb.length; ) {
      const nl = hv.getUint32(p, true);
      const name = dec.decode(hb.subarray(p + 4, p + 4 + nl));
      p += 4 + nl;
      const vl = hv.getUint32(p, true);
      headers.push([name, dec.decode(hb.subarray(p + 4, p + 4 + vl))]);
      p += 4 + vl;
    }
    out.push({
      key: dec.decode(slice(b.keys, b.keyEnds, i)),
      time: new DataView(b.times.buffer, b.times.byteOffset, b.times.byteLength).getBigInt64(8 * i, true),
      payload: dec.decode(slice(b.payloads, b.payloadEnds, i)),
      headers,
      origin: u32(b.origins, i),
    });
  }
  return out;
}

function packAccs(list) {
  const parts = list.map((a) => (typeof a === "string" ? enc.encode(a) : a));
  const ends = new DataView(new ArrayBuffer(4 * parts.length));
  let total = 0;
  parts.forEach((p, i) => ends.setUint32(4 * i, (total += p.length), true));
  const data = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { data, ends: new Uint8Array(ends.buffer) };
}

function unpackAccs(a) {
  const dv = new DataView(a.ends.buffer, a.ends.byteOffset, a.ends.byteLength);
  const out = [];
  for (let i = 0, s = 0; i < a.ends.length / 4; i++) {
    const e = dv.getUint32(4 * i, true);
    out.push(dec.decode(a.data.subarray(s, e)));
    s = e;
  }
  return out;
}

/** Packs windows `{ key?, start, end }` and their accumulators as the host does for `finish`. */
function packWindows(list) {
  const keys = list.map((w) => enc.encode(w.key ?? ""));
  const keyEnds = new DataView(new ArrayBuffer(4 * list.length));
  const bounds = new DataView(new ArrayBuffer(16 * list.length));
  let total = 0;
  list.forEach((w, i) => {
    keyEnds.setUint32(4 * i, (total += keys[i].length), true);
    bounds.setBigInt64(16 * i, BigInt(w.start), true);
    bounds.setBigInt64(16 * i + 8, BigInt(w.end), true);
  });
  const { data } = packAccs(keys);
  return { keys: data, keyEnds: new Uint8Array(keyEnds.buffer), bounds: new Uint8Array(bounds.buffer) };
}

/** Unpacks the `results` of `finish` as [payload text, origin] pairs, checking their layout. */
function unpackResults(r) {
  const n = r.origins.length / 4;
  assert.equal(r.payloadEnds.length, 4 * n, "one payload end per origin");
  const origins = new DataView(r.origins.buffer, r.origins.byteOffset, r.origins.byteLength);
  const payloads = unpackAccs({ data: r.payloads, ends: r.payloadEnds });
  const out = [];
  for (let j = 0, prev = 0; j < n; j++) {
    const o = origins.getUint32(4 * j, true);
    assert.ok(o >= prev, "origins non-decreasing");
    out.push([payloads[j], (prev = o)]);
  }
  if (n > 0) assert.equal(new DataView(r.payloadEnds.buffer, r.payloadEnds.byteOffset).getUint32(4 * (n - 1), true), r.payloads.length);
  return out;
}

function u32s(list) {
  const dv = new DataView(new ArrayBuffer(4 * list.length));
  list.forEach((v, i) => dv.setUint32(4 * i, v, true));
  return new Uint8Array(dv.buffer);
}

/** What a WIT export threw (the `err` payload), or fails if it returned. */
function thrown(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail("expected the call to throw");
}

export function defineTests(weir, label) {
  const logged = [];
  const state = new Map();
  const timers = [];
  const keyed = {
    get: (name) => state.get(name) ?? null,
    set: (name, value) => state.set(name, value),
    delete: (name) => state.delete(name),
    registerEventTimer: (t) => timers.push(["register", t]),
    deleteEventTimer: (t) => timers.push(["delete", t]),
    registerProcessingTimer: (t) => timers.push(["register-processing", t]),
    deleteProcessingTimer: (t) => timers.push(["delete-processing", t]),
    currentProcessingTime: () => 1700000009000,
    timerDomain: () => "processing-time",
  };
  const bind = (s64 = "number") => weir.bindHost({ log: (level, message) => logged.push([level, message]), keyed, s64 });
  bind();

  const events = [
    { key: "bo", time: 1700000000331, payload: '{"user":"bo","amount":25}', headers: [["Trace", "t1"]] },
    { key: "chloé", time: 1700000001001, payload: '{"user":"chloé","amount":3}' },
    { key: "", time: -5, payload: "not json {" },
    { key: "ana", time: 2 ** 40 + 7, payload: '{"user":"ana","amount":40,"note":"日本 😀"}' },
  ];

  test(`${label}: events read key, time, payload, json and headers lazily`, () => {
    const seen = [];
    const t = weir.transform((e) => {
      seen.push([e.index, e.keyString, e.time, e.payload.length, e.headers, e.header("Trace")]);
      return null;
    });
    t.configure("{}");
    assert.equal(unpackBatch(t.process(packBatch(events))).length, 0);
    assert.deepEqual(seen, [
      [0, "bo", 1700000000331, 25, [["Trace", "t1"]], "t1"],
      [1, "chloé", 1700000001001, 28, [], null],
      [2, null, -5, 10, [], null],
      [3, "ana", 2 ** 40 + 7, enc.encode(events[3].payload).length, [], null],
    ]);
  });

  test(`${label}: forwarded events keep every field and their origins, around other outputs`, () => {
    const t = weir.transform((e) => (e.index === 1 ? "x" : e.index === 2 ? null : e));
    t.configure("");
    const out = unpackBatch(t.process(packBatch(events)));
    assert.deepEqual(
      out.map((o) => [o.key, o.time, o.payload, o.headers, o.origin]),
      [
        ["bo", 1700000000331n, events[0].payload, [["Trace", "t1"]], 0],
        ["chloé", 1700000001001n, "x", [], 1],
        ["ana", BigInt(2 ** 40 + 7), events[3].payload, [], 3],
      ],
    );
  });

  test(`${label}: payloads may be bytes, text (UTF-8) or JSON values; arrays emit several`, () => {
    const t = weir.transform({
      configure: (config) => ({ suffix: config.suffix }),
      process: (e, ctx) => {
        if (e.index === 0) return [new Uint8Array([1, 2]), "é" + ctx.suffix, { n: 1, s: "😀" }, [1, 2], null, 7];
        if (e.index === 3) return e.json;
        return null;
      },
    });
    t.configure('{"suffix":"!"}');
    const out = unpackBatch(t.process(packBatch(events)));
    assert.deepEqual(
      out.map((o) => [o.payload, o.origin, o.key]),
      [
        ["\u0001\u0002", 0, "bo"],
        ["é!", 0, "bo"],
        ['{"n":1,"s":"😀"}', 0, "bo"],
        ["[1,2]", 0, "bo"],
        ["7", 0, "bo"],
        ['{"user":"ana","amount":40,"note":"日本 😀"}', 3, "ana"],
      ],
    );
  });

  test(`${label}: event.with and output change key, time, headers and payload`, () => {
    const t = weir.transform((e) => {
      if (e.index === 0) return e.with({ key: "k2", time: -(2 ** 33) - 1, headers: { A: "1", "B-é": "ü" } });
      if (e.index === 1) return [e.with({ payload: { p: 1 } }), weir.output({ payload: "o", key: null })];
      if (e.index === 3) return e.with({ time: BigInt(5), headers: [] });
      return null;
    });
    t.configure("{}");
    const out = unpackBatch(t.process(packBatch(events)));
    assert.deepEqual(
      out.map((o) => [o.key, o.time, o.payload, o.headers, o.origin]),
      [
        ["k2", -(2n ** 33n) - 1n, events[0].payload, [["A", "1"], ["B-é", "ü"]], 0],
        ["chloé", 1700000001001n, '{"p":1}', [], 1],
        ["", 1700000001001n, "o", [], 1],
        ["ana", 5n, events[3].payload, [], 3],
      ],
    );
  });

  test(`${label}: a failing event becomes an event-error with its index and message`, () => {
    const t = weir.transform((e) => e.json);
    t.configure("{}");
    const err = thrown(() => t.process(packBatch(events)));
    assert.equal(err.index, 2);
    assert.match(err.message, /^payload is not JSON: /);
    const t2 = weir.transform((e) => (e.index === 1 ? undefined : e));
    t2.configure("{}");
    const err2 = thrown(() => t2.process(packBatch(events)));
    assert.equal(err2.index, 1);
    assert.match(err2.message, /returned undefined/);
    const t3 = weir.transform((e) => {
      if (e.index === 3) throw new weir.EventError("too big");
      return e;
    });
    t3.configure("{}");
    assert.deepEqual(thrown(() => t3.process(packBatch(events))), { index: 3, message: "too big" });
  });

  test(`${label}: configure refuses bad config JSON and configure errors; process before configure is an error`, () => {
    const t = weir.transform({
      configure: (c) => {
        if (c.bad) throw new Error("bad config");
      },
      process: (e) => e,
    });
    assert.deepEqual(thrown(() => t.process(packBatch(events))), { index: 0, message: "called before a successful `configure`" });
    assert.match(thrown(() => t.configure("{nope")), /^config is not valid JSON/);
    assert.equal(thrown(() => t.configure('{"bad":true}')), "bad config");
    assert.throws(() => weir.transform({ process: (e) => e, procss: () => 1 }), /unknown member `procss`/);
  });

  test(`${label}: invalid UTF-8 in a payload is an event error, in a key a replacement char`, () => {
    const batch = packBatch([{ key: "k", time: 1, payload: new Uint8Array([0x7b, 0xff, 0x7d]) }]);
    batch.keys = new Uint8Array([0xc3]);
    const t = weir.transform((e) => [e.keyString, e.text]);
    t.configure("{}");
    const err = thrown(() => t.process(batch));
    assert.equal(err.index, 0);
    assert.equal(err.message, "payload is not valid UTF-8");
    const t2 = weir.transform((e) => e.keyString);
    t2.configure("{}");
    assert.equal(unpackBatch(t2.process(batch))[0].payload, "\ufffd");
    batch.keys = new Uint8Array([0x61, 0xff, 0xe6, 0x97, 0xa5, 0xc3]);
    batch.keyEnds = u32s([6]);
    assert.equal(unpackBatch(t2.process(batch))[0].payload, "a\ufffd日\ufffd");
  });

  test(`${label}: utf8 helpers round-trip every plane`, () => {
    for (const s of ["", "ascii", "é", "日本語", "😀 and \u0000 nul", "\u007f\u0080\u07ff\u0800\uffff"]) {
      const bytes = weir.encodeUtf8(s);
      assert.deepEqual([...bytes], [...enc.encode(s)], s);
      assert.equal(weir.decodeUtf8(bytes), s);
    }
    assert.throws(() => weir.decodeUtf8(new Uint8Array([0xed, 0xa0, 0x80])), /not valid UTF-8/);
    assert.throws(() => weir.encodeUtf8("\ud800"), /lone surrogate/);
  });

  test(`${label}: aggregate decodes touched accumulators once, copies the others, finishes`, () => {
    const calls = [];
    const a = weir.aggregate({
      create: () => ({ n: 0, sum: 0 }),
      add(acc, e) {
        const v = e.json.amount;
        if (typeof v !== "number") throw new Error("no amount");
        acc.n += 1;
        acc.sum += v;
      },
      merge: (x, y) => ({ n: x.n + y.n, sum: x.sum + y.sum }),
      finish(key, w, acc) {
        calls.push([key, w]);
        return acc.n === 0 ? null : { key, start: w.start, end: w.end, ...acc };
      },
    });
    a.configure("{}");
    assert.equal(dec.decode(a.create()), '{"n":0,"sum":0}');
    const evs = [events[0], events[1], events[3]];
    const accs = packAccs(["", '{"n":2,"sum":5}', "untouched bytes"]);
    const out = unpackAccs(a.add(accs, u32s([1, 0, 1]), packBatch(evs)));
    assert.deepEqual(out, ['{"n":1,"sum":3}', '{"n":4,"sum":70}', "untouched bytes"]);
    const err = thrown(() => a.add(accs, u32s([0, 0, 0]), packBatch([events[0], events[2], events[3]])));
    assert.equal(err.index, 1);
    assert.deepEqual(unpackAccs(a.merge(packAccs(['{"n":1,"sum":2}', ""]), u32s([2]))), ['{"n":1,"sum":2}']);
    const res = a.finish(
      packWindows([{ key: "chloé", start: 10, end: 20 }, { start: 0, end: 1 }]),
      packAccs(['{"n":1,"sum":2}', ""]),
    );
    assert.deepEqual(unpackResults(res), [['{"key":"chloé","start":10,"end":20,"n":1,"sum":2}', 0]]);
    assert.deepEqual(calls, [["chloé", { start: 10, end: 20 }], [null, { start: 0, end: 1 }]]);
    assert.match(thrown(() => a.merge(packAccs(["{", "{}"]), u32s([2]))).message, /^cannot decode accumulator/);
  });

  test(`${label}: aggregate finish: one call for many windows, payloads packed with their window as origin`, () => {
    const seen = [];
    const a = weir.aggregate({
      configure: (config) => ({ tag: config.tag }),
      create: () => ({ n: 0 }),
      add: () => {},
      merge: (x) => x,
      finish(key, w, acc, ctx) {
        seen.push([key, w, acc]);
        if (acc.n === 0) return null;
        if (acc.n === 1) return { key, ...w, tag: ctx.tag };
        return [`${key}:é`, null, new Uint8Array([0x61, 0x62]), [acc.n], acc.n];
      },
    });
    a.configure('{"tag":"t"}');
    const wins = [
      { key: "bo", start: 0, end: 10 },
      { start: -(2 ** 40), end: 2 ** 53 - 1 },
      { key: "日本", start: 5, end: 6 },
      { key: "ana", start: 1700000000000, end: 1700000060000 },
    ];
    const res = a.finish(packWindows(wins), packAccs(['{"n":1}', '{"n":0}', '{"n":3}', ""]));
    assert.deepEqual(unpackResults(res), [
      ['{"key":"bo","start":0,"end":10,"tag":"t"}', 0],
      ["日本:é", 2],
      ["ab", 2],
      ["[3]", 2],
      ["3", 2],
    ]);
    assert.deepEqual(seen, [
      ["bo", { start: 0, end: 10 }, { n: 1 }],
      [null, { start: -(2 ** 40), end: 2 ** 53 - 1 }, { n: 0 }],
      ["日本", { start: 5, end: 6 }, { n: 3 }],
      ["ana", { start: 1700000000000, end: 1700000060000 }, { n: 0 }],
    ]);
    assert.deepEqual(unpackResults(a.finish(packWindows([]), packAccs([]))), []);
    // Many windows, one payload each: every column grows.
    const many = Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, start: i, end: i + 1 }));
    const out = unpackResults(a.finish(packWindows(many), packAccs(many.map(() => '{"n":1}'))));
    assert.deepEqual(out, many.map((w, i) => [`{"key":"k${i}","start":${i},"end":${i + 1},"tag":"t"}`, i]));
  });

  test(`${label}: aggregate finish: a failing window is a window-error with its index and message`, () => {
    const make = (finish) => {
      const a = weir.aggregate({ create: () => ({}), add: () => {}, merge: (x) => x, finish });
      a.configure("{}");
      return a;
    };
    const wins = packWindows([{ key: "a", start: 0, end: 1 }, { key: "b", start: 1, end: 2 }, { key: "c", start: 2, end: 3 }]);
    const accs = packAccs(['{"v":1}', '{"v":2}', '{"v":3}']);
    const by = (f) => thrown(() => make(f).finish(wins, accs));
    assert.deepEqual(by((k, w, acc) => (acc.v === 2 ? undefined : "x")), {
      index: 1,
      message: "finish returned undefined: return the result, or null for none",
    });
    assert.deepEqual(by((k) => {
      if (k === "b") throw new weir.EventError("no b");
      return "x";
    }), { index: 1, message: "no b" });
    assert.deepEqual(by((k) => (k === "b" ? ["x", undefined] : null)), { index: 1, message: "element 1 of finish's result is undefined" });
    assert.deepEqual(by((k) => (k === "b" ? weir.output({ payload: "x" }) : null)), {
      index: 1,
      message: "finish returns payloads only: the host sets the key, the time and the window headers",
    });
    assert.deepEqual(by((k) => (k === "b" ? 10n : null)), { index: 1, message: "cannot serialize output as JSON: Do not know how to serialize a BigInt" });
    // Text is encoded in bulk, after later windows ran: the error still names the window of the text.
    const lone = by((k) => (k === "a" ? "\ud800" : new Uint8Array([1])));
    assert.deepEqual(lone, { index: 0, message: "output holds a lone surrogate and cannot be encoded as UTF-8" });
    assert.deepEqual(by((k) => (k === "c" ? "\ud800" : "ok")), { index: 2, message: "output holds a lone surrogate and cannot be encoded as UTF-8" });
    const bad = thrown(() => make(() => "x").finish(wins, packAccs(['{"v":1}', "{", '{"v":3}'])));
    assert.equal(bad.index, 1);
    assert.match(bad.message, /^cannot decode accumulator: /);
    const far = packWindows([{ start: 0, end: 1 }, { start: 0, end: 2n ** 53n }]);
    assert.deepEqual(thrown(() => make(() => "x").finish(far, packAccs(["{}", "{}"]))), {
      index: 1,
      message: "window end 9007199254740992 is beyond JavaScript's exact integer range (±2^53)",
    });
    const farBack = packWindows([{ start: -(2n ** 63n), end: 1 }]);
    assert.equal(thrown(() => make(() => "x").finish(farBack, packAccs(["{}"]))).message, "window start -9223372036854775808 is beyond JavaScript's exact integer range (±2^53)");
    assert.deepEqual(thrown(() => make(() => "x").finish(wins, packAccs(["{}"]))), { index: 0, message: "1 accumulators for 3 windows" });
    const early = weir.aggregate({ create: () => ({}), add: () => {}, merge: (x) => x, finish: () => null });
    assert.deepEqual(thrown(() => early.finish(wins, accs)), { index: 0, message: "called before a successful `configure`" });
  });

  test(`${label}: aggregate merge: one call for many groups, each folded left to right, results in group order`, () => {
    const seen = [];
    const a = weir.aggregate({
      configure: (config) => ({ tag: config.tag }),
      create: () => ({ seen: [] }),
      add: () => {},
      merge(x, y, ctx) {
        seen.push([x.seen.join(""), y.seen.join(""), ctx.tag]);
        return { seen: [...x.seen, ...y.seen] };
      },
      finish: () => null,
    });
    a.configure('{"tag":"t"}');
    const groups = [
      ['{ "seen": ["kept", "as stored"] }'],
      ['{"seen":["a"]}', '{"seen":["b"]}'],
      ['{"seen":["c"]}', "", '{"seen":["d","é"]}'], // empty: a new accumulator
      [""],
      ['{"seen":["f"]}', '{"seen":["g"]}'],
    ];
    const out = a.merge(packAccs(groups.flat()), u32s([1, 3, 6, 7, 9]));
    assert.deepEqual(unpackAccs(out), ['{ "seen": ["kept", "as stored"] }', '{"seen":["a","b"]}', '{"seen":["c","d","é"]}', "", '{"seen":["f","g"]}']);
    assert.deepEqual(seen, [["a", "b", "t"], ["c", "", "t"], ["c", "dé", "t"], ["f", "g", "t"]]);
    assert.deepEqual(unpackAccs(a.merge(packAccs([]), u32s([]))), []);
    // Many groups: the output columns grow.
    const many = Array.from({ length: 300 }, (_, i) => [`{"seen":["${i}"]}`, '{"seen":["x"]}']);
    const bigOut = unpackAccs(a.merge(packAccs(many.flat()), u32s(many.map((_, i) => 2 * i + 2))));
    assert.deepEqual(bigOut, many.map((_, i) => `{"seen":["${i}","x"]}`));
  });

  test(`${label}: aggregate merge: a failing group is a window-error with its index; malformed groups are refused`, () => {
    const a = weir.aggregate({
      create: () => ({ seen: [] }),
      add: () => {},
      merge(x, y) {
        if (y.seen.includes("bad")) throw new weir.EventError(`cannot merge ${y.seen} into ${x.seen}`);
        if (y.seen.includes("undefined")) return undefined;
        if (y.seen.includes("bigint")) return { n: 1n };
        return { seen: [...x.seen, ...y.seen] };
      },
      finish: () => null,
    });
    a.configure("{}");
    const ok = ['{"seen":["a"]}', '{"seen":["b"]}'];
    const by = (failing) => thrown(() => a.merge(packAccs([...ok, ...failing, ...ok, ...failing]), u32s([2, 2 + failing.length, 4 + failing.length, 4 + 2 * failing.length])));
    assert.deepEqual(by(['{"seen":["x"]}', '{"seen":["bad"]}']), { index: 1, message: "cannot merge bad into x" });
    assert.deepEqual(by(['{"seen":[]}', '{"seen":["y"]}', '{"seen":["undefined"]}']), {
      index: 1,
      message: "merge returned undefined: return the merged accumulator",
    });
    assert.deepEqual(by(['{"seen":["x"]}', '{"seen":["bigint"]}']), {
      index: 1,
      message: "cannot encode accumulator as JSON: Do not know how to serialize a BigInt",
    });
    const bad = by(['{"seen":["x"]}', "{"]);
    assert.equal(bad.index, 1);
    assert.match(bad.message, /^cannot decode accumulator: /);
    assert.deepEqual(thrown(() => a.merge(packAccs(['{"seen":[]}', '{"seen":["bad"]}', ...ok]), u32s([2, 4]))), { index: 0, message: "cannot merge bad into " });

    const accs = packAccs(['{"seen":["a"]}', '{"seen":["b"]}', '{"seen":["c"]}']);
    assert.deepEqual(thrown(() => a.merge(accs, u32s([1, 1, 3]))), { index: 1, message: "malformed groups: group 1 is empty (it starts and ends at accumulator 1)" });
    assert.deepEqual(thrown(() => a.merge(accs, u32s([0, 3]))), { index: 0, message: "malformed groups: group 0 is empty (it starts and ends at accumulator 0)" });
    assert.deepEqual(thrown(() => a.merge(accs, u32s([2, 1]))), {
      index: 1,
      message: "malformed groups: group 1 ends at accumulator 1, before it starts (2): group ends must increase",
    });
    assert.deepEqual(thrown(() => a.merge(accs, u32s([1, 4]))), { index: 1, message: "malformed groups: group 1 ends at accumulator 4, but the call has 3 accumulators" });
    assert.deepEqual(thrown(() => a.merge(accs, u32s([3]).subarray(0, 3))), { index: 0, message: "malformed groups: 3 bytes, not a whole number of u32 ends" });
    const early = weir.aggregate({ create: () => ({}), add: () => {}, merge: (x) => x, finish: () => null });
    assert.deepEqual(thrown(() => early.merge(accs, u32s([3]))), { index: 0, message: "called before a successful `configure`" });
  });

  test(`${label}: aggregate state versions: same version passes through, older ones migrate or refuse`, () => {
    const base = { create: () => ({ v: 2 }), add: () => {}, merge: (x) => x, finish: () => null };
    const plain = weir.aggregate(base);
    plain.configure("{}");
    assert.equal(plain.stateVersion(), 0);
    assert.deepEqual(plain.migrate(0, enc.encode("abc")), enc.encode("abc"));
    assert.match(thrown(() => plain.migrate(1, enc.encode("{}"))), /cannot migrate accumulators from state version 1 to 0/);
    const v2 = weir.aggregate({ ...base, stateVersion: 2, migrate: (from, old) => ({ from, old }) });
    v2.configure("{}");
    assert.equal(v2.stateVersion(), 2);
    assert.equal(dec.decode(v2.migrate(1, enc.encode("[1]"))), '{"from":1,"old":[1]}');
    assert.throws(() => weir.aggregate({ ...base, stateVersion: -1 }), /stateVersion/);
  });

  test(`${label}: process keeps JSON state and timers per key, onTimer emits with the timer's key and time`, () => {
    for (const s64 of ["number", "bigint"]) {
      bind(s64);
      state.clear();
      timers.length = 0;
      const p = weir.process({
        onEvent(e, st) {
          const n = (st.get("n") ?? 0) + 1;
          st.set("n", n);
          st.registerEventTimer(e.time + 1000);
          if (n === 2) st.deleteEventTimer(e.time + 999);
          return n === 1 ? e : { n, key: st.keyString };
        },
        onTimer(time, st) {
          const n = st.get("n");
          st.delete("n");
          return [weir.output({ payload: { n, time } }), "plain", weir.output({ payload: "k", key: "other", time: 3 })];
        },
      });
      p.configure("{}");
      const out = unpackBatch(p.onEvents(enc.encode("bo"), packBatch([events[0], events[0]])));
      assert.deepEqual(out.map((o) => [o.payload, o.origin]), [[events[0].payload, 0], ['{"n":2,"key":"bo"}', 1]]);
      const t = (v) => (s64 === "bigint" ? BigInt(v) : v);
      assert.deepEqual(timers, [["register", t(1700000001331)], ["register", t(1700000001331)], ["delete", t(1700000001330)]]);
      const fired = unpackBatch(p.onTimer(enc.encode("bo"), t(1700000001331)));
      assert.deepEqual(
        fired.map((o) => [o.key, o.time, o.payload, o.origin]),
        [
          ["bo", 1700000001331n, '{"n":2,"time":1700000001331}', 0],
          ["bo", 1700000001331n, "plain", 0],
          ["other", 3n, "k", 0],
        ],
      );
      assert.equal(state.has("n"), false);
    }
    bind();
  });

  test(`${label}: process registers processing-time timers from the host's clock and sees their domain`, () => {
    timers.length = 0;
    const p = weir.process({
      onEvent(e, st) {
        st.registerProcessingTimer(st.processingTime() + 500);
        st.deleteProcessingTimer(1);
        return null;
      },
      onTimer(time, st) {
        return weir.output({ payload: { time, domain: st.timerDomain } });
      },
    });
    p.configure("{}");
    unpackBatch(p.onEvents(enc.encode("bo"), packBatch([events[0]])));
    assert.deepEqual(timers, [["register-processing", 1700000009500], ["delete-processing", 1]]);
    const fired = unpackBatch(p.onTimer(enc.encode("bo"), 1700000009500));
    assert.deepEqual(fired.map((o) => o.payload), ['{"time":1700000009500,"domain":"processing"}']);
  });

  test(`${label}: log joins its arguments into one host log record`, () => {
    logged.length = 0;
    weir.log.warn("count", 3, { a: 1 });
    assert.deepEqual(logged, [["warn", 'count 3 {"a":1}']]);
  });

  test(`${label}: worldExports checks the plugin's default export against the manifest's world`, () => {
    const t = weir.transform((e) => e);
    assert.equal(weir.worldExports({ default: t }, "transform", "app.js"), t);
    assert.throws(() => weir.worldExports({ default: t }, "aggregate", "app.js"), /is an operator of world "transform" but weir-plugin.toml says world = "aggregate"/);
    assert.throws(() => weir.worldExports({}, "transform", "app.js"), /app.js must `export default transform/);
  });

  test(`${label}: a batch of many events grows every column`, () => {
    const many = [];
    for (let i = 0; i < 1000; i++) many.push({ key: `k${i % 7}`, time: i, payload: `{"i":${i},"s":"${"é".repeat(i % 5)}"}` });
    const t = weir.transform((e) => (e.index % 3 === 0 ? e : e.index % 3 === 1 ? [e.json, e.with({ key: "x" })] : null));
    t.configure("{}");
    const out = unpackBatch(t.process(packBatch(many)));
    assert.equal(out.length, 334 + 2 * 333);
    const expect = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 3 === 0) expect.push([many[i].key, BigInt(i), many[i].payload, i]);
      if (i % 3 === 1) expect.push([many[i].key, BigInt(i), JSON.stringify(JSON.parse(many[i].payload)), i], ["x", BigInt(i), many[i].payload, i]);
    }
    assert.deepEqual(out.map((o) => [o.key, o.time, o.payload, o.origin]), expect);
  });
}
