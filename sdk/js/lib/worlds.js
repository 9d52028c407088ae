// Part of weir.js (the JavaScript SDK): operator definitions and the world exports. Internal:
// plugins import "weir".

import { host, messageOf, eventFailure } from "./host.js";
import { decodeUtf8, encodeUtf8, decodeUtf8Lossy } from "./utf8.js";
import { u32Column, s64ToNumber, timeValue, s64Arg, BatchIn, WindowsIn, Event, Output } from "./input.js";
import { ValueColumn, ResultsOut, BatchOut } from "./output.js";

// ---------------------------------------------------------------------------------------------
// Definitions and the world exports

const WORLD = Symbol("weir world");

function checkMembers(what, def, allowed, required, values = []) {
  if (def === null || typeof def !== "object") throw new TypeError(`${what} takes an object with ${allowed.join(", ")}`);
  for (const k of Object.keys(def)) {
    if (!allowed.includes(k) && !values.includes(k)) {
      throw new TypeError(`${what}: unknown member \`${k}\` (expected ${[...allowed, ...values].join(", ")})`);
    }
    if (allowed.includes(k) && typeof def[k] !== "function") throw new TypeError(`${what}: \`${k}\` must be a function`);
  }
  for (const k of required) {
    if (typeof def[k] !== "function") throw new TypeError(`${what}: \`${k}\` is required`);
  }
}

/** Parses the config JSON and runs the author's `configure`; returns the context passed to every call. */
function contextOf(def, configText) {
  let config;
  try {
    config = configText.trim() === "" ? {} : JSON.parse(configText);
  } catch (e) {
    throw `config is not valid JSON: ${messageOf(e)}`;
  }
  if (!def.configure) return config;
  let ctx;
  try {
    ctx = def.configure(config);
  } catch (e) {
    throw messageOf(e);
  }
  return ctx === undefined ? config : ctx;
}

const NOT_READY = "called before a successful `configure`";

/** Appends one payload `r` that `finish` returned for window `i`. */
function pushResult(out, r, i) {
  if (r instanceof Output || r instanceof Event) {
    throw new Error("finish returns payloads only: the host sets the key, the time and the window headers");
  }
  out.push(r, i);
}

/** What is wrong with group `g` of a `merge` call, from accumulator `start` to `end` (of `count`). */
function groupProblem(g, start, end, count) {
  if (end > count) return `malformed groups: group ${g} ends at accumulator ${end}, but the call has ${count} accumulators`;
  if (end === start) return `malformed groups: group ${g} is empty (it starts and ends at accumulator ${end})`;
  return `malformed groups: group ${g} ends at accumulator ${end}, before it starts (${start}): group ends must increase`;
}

/**
 * A `transform` operator. `def` is `(event, config) => result` or `{ configure?(config), process(event, ctx) }`
 * where `configure` returns the context passed to `process` (the parsed config when it returns nothing).
 * See the module comment for what `process` may return.
 */
export function transform(def) {
  if (typeof def === "function") def = { process: def };
  checkMembers("transform()", def, ["configure", "process"], ["process"]);
  let ready = false;
  let ctx;
  return {
    [WORLD]: "transform",
    configure(config) {
      ctx = contextOf(def, config);
      ready = true;
    },
    process(batch) {
      if (!ready) throw eventFailure(0, NOT_READY);
      const input = new BatchIn(batch);
      const out = new BatchOut(input);
      const n = input.length;
      const handle = def.process;
      let i = 0;
      try {
        for (; i < n; i++) {
          const event = new Event(input, i);
          out.emit(event, handle(event, ctx));
        }
      } catch (e) {
        throw eventFailure(i, e);
      }
      return out.finish();
    },
  };
}

/**
 * A window aggregate over JSON accumulators: `{ configure?(config), create(ctx), add(acc, event, ctx),
 * merge(a, b, ctx), finish(key, window, acc, ctx) }`. `add` returns the new accumulator (or
 * nothing, having changed `acc` in place); `finish` gets the key as text (null: no key) and
 * `window` as `{ start, end }` in ms, and returns the window's result: a payload, an array of
 * payloads, or null for none; throwing reports that window (the host keeps its state and finishes
 * the other windows). The host makes every merge due together in one call; the SDK folds each
 * group of accumulators with `merge`, left to right (time order), and throwing reports that
 * group's window likewise. `create` is called once per instance: the host starts every new window
 * with a copy of its accumulator, so it must depend on the configuration only. Accumulators are
 * stored by the host as JSON text, so they must survive JSON.stringify/parse (keep 64-bit
 * integers as strings).
 *
 * Evolving the accumulator: `stateVersion` (an integer, 0 by default) is recorded by checkpoints
 * next to the accumulators; raise it when accumulators written before can no longer be read as
 * they are, and give `migrate(fromVersion, oldAcc, ctx)` returning the accumulator in the current
 * form (`oldAcc` is the old JSON value). Without `migrate`, restoring an older checkpoint fails
 * with a clear message instead of misreading state (as in sdk/src/aggregate.rs).
 */
export function aggregate(def) {
  checkMembers(
    "aggregate()",
    def,
    ["configure", "create", "add", "merge", "finish", "migrate"],
    ["create", "add", "merge", "finish"],
    ["stateVersion"],
  );
  const stateVersion = def.stateVersion ?? 0;
  if (!Number.isInteger(stateVersion) || stateVersion < 0 || stateVersion > 0xffffffff) {
    throw new TypeError(`aggregate(): stateVersion must be an integer from 0 to 2^32-1, not ${JSON.stringify(def.stateVersion)}`);
  }
  let ready = false;
  let ctx;

  const fresh = () => {
    const acc = def.create(ctx);
    if (acc === undefined) throw new Error("create returned undefined: return the empty accumulator");
    return acc;
  };
  const decode = (bytes, start, end) => {
    if (start === end) return fresh();
    const text = decodeUtf8(bytes, start, end, "accumulator");
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`cannot decode accumulator: ${messageOf(e)}`);
    }
  };
  const encode = (acc) => {
    const col = new ValueColumn(64, 1);
    encodeInto(col, acc);
    return col.finish()[0];
  };
  const encodeInto = (col, acc) => {
    let json;
    try {
      json = JSON.stringify(acc);
    } catch (e) {
      throw new Error(`cannot encode accumulator as JSON: ${messageOf(e)}`);
    }
    if (json === undefined) throw new Error(`cannot encode accumulator as JSON: a ${typeof acc} has no JSON form`);
    col.pushText(json);
  };
  const whole = (f) => {
    if (!ready) throw NOT_READY;
    try {
      return f();
    } catch (e) {
      throw messageOf(e);
    }
  };

  return {
    [WORLD]: "aggregate",
    configure(config) {
      ctx = contextOf(def, config);
      ready = true;
    },
    create() {
      return whole(() => encode(fresh()));
    },
    add(accumulators, targets, batch) {
      if (!ready) throw eventFailure(0, NOT_READY);
      const input = new BatchIn(batch);
      const n = input.length;
      const data = accumulators.data;
      let ends;
      let tg;
      try {
        ends = u32Column(accumulators.ends, "accumulators.ends");
        tg = u32Column(targets, "targets");
        if (tg.length < n) throw new Error(`targets holds ${tg.length} entries for ${n} events`);
      } catch (e) {
        throw eventFailure(0, e);
      }
      const count = ends.length;
      const accs = new Array(count);
      const touched = new Uint8Array(count);
      let i = 0;
      try {
        for (; i < n; i++) {
          const t = tg[i];
          if (t >= count) throw new Error(`target ${t} is not an accumulator index (${count} accumulators)`);
          if (touched[t] === 0) {
            accs[t] = decode(data, t === 0 ? 0 : ends[t - 1], ends[t]);
            touched[t] = 1;
          }
          const next = def.add(accs[t], new Event(input, i), ctx);
          if (next !== undefined) accs[t] = next;
        }
      } catch (e) {
        throw eventFailure(i, e);
      }
      const col = new ValueColumn(data.length + 16 * count, count);
      try {
        for (let k = 0; k < count; k++) {
          if (touched[k] === 1) encodeInto(col, accs[k]);
          else col.pushBytes(data, k === 0 ? 0 : ends[k - 1], ends[k]);
        }
      } catch (e) {
        throw eventFailure(0, e);
      }
      const [outData, outEnds] = col.finish();
      return { data: outData, ends: outEnds };
    },
    // One call for every merge due together (wit/types.wit, `merge`): group `g` is accumulators
    // `groups[g-1] .. groups[g]`, folded left to right (time order) with the author's pairwise
    // `merge`, each accumulator decoded once and each group's result encoded once (a group of one
    // is its accumulator, passed through as stored). A group that fails ends the call with a
    // `window-error` naming it; the host reports its window and calls again without it.
    merge(accumulators, groups) {
      if (!ready) throw eventFailure(0, NOT_READY);
      const data = accumulators.data;
      let ends;
      let groupEnds;
      try {
        ends = u32Column(accumulators.ends, "accumulators.ends");
        if (groups.length % 4 !== 0) throw new Error(`malformed groups: ${groups.length} bytes, not a whole number of u32 ends`);
        groupEnds = u32Column(groups, "groups");
      } catch (e) {
        throw eventFailure(0, e);
      }
      const count = ends.length;
      const n = groupEnds.length;
      const col = new ValueColumn(data.length + 16 * n, n);
      const handle = def.merge;
      let g = 0;
      try {
        for (let start = 0; g < n; g++) {
          const end = groupEnds[g];
          if (end <= start || end > count) throw new Error(groupProblem(g, start, end, count));
          if (end - start === 1) {
            col.pushBytes(data, start === 0 ? 0 : ends[start - 1], ends[start]);
          } else {
            let acc = decode(data, start === 0 ? 0 : ends[start - 1], ends[start]);
            for (let i = start + 1; i < end; i++) {
              acc = handle(acc, decode(data, ends[i - 1], ends[i]), ctx);
              if (acc === undefined) throw new Error("merge returned undefined: return the merged accumulator");
            }
            encodeInto(col, acc);
          }
          start = end;
        }
        const [outData, outEnds] = col.finish();
        return { data: outData, ends: outEnds };
      } catch (e) {
        // Text is encoded in bulk: an encoding error may belong to an earlier group's result.
        throw eventFailure(col.failed < 0 ? g : col.failed, e);
      }
    },
    // One call for every window that fires together (wit/types.wit, `windows` and `results`):
    // calls the author's `finish` per window and packs its payloads with the window's index as
    // their origin. A window that fails ends the call with a `window-error` naming it; the host
    // reports it and calls again without it.
    finish(windows, accumulators) {
      if (!ready) throw eventFailure(0, NOT_READY);
      const data = accumulators.data;
      let win;
      let ends;
      try {
        win = new WindowsIn(windows);
        ends = u32Column(accumulators.ends, "accumulators.ends");
        if (ends.length !== win.length) throw new Error(`${ends.length} accumulators for ${win.length} windows`);
      } catch (e) {
        throw eventFailure(0, e);
      }
      const n = win.length;
      const out = new ResultsOut(n);
      const handle = def.finish;
      let i = 0;
      try {
        for (; i < n; i++) {
          const key = win.keyText(i);
          const w = win.window(i);
          const result = handle(key, w, decode(data, i === 0 ? 0 : ends[i - 1], ends[i]), ctx);
          if (result === undefined) throw new Error("finish returned undefined: return the result, or null for none");
          if (result === null) continue;
          if (!Array.isArray(result)) {
            pushResult(out, result, i);
            continue;
          }
          for (let k = 0; k < result.length; k++) {
            const r = result[k];
            if (r === null) continue;
            if (r === undefined) throw new Error(`element ${k} of finish's result is undefined`);
            pushResult(out, r, i);
          }
        }
        return out.finish();
      } catch (e) {
        // Text is encoded in bulk: an encoding error may belong to an earlier window's payload.
        const failed = out.failedOrigin();
        throw eventFailure(failed < 0 ? i : failed, e);
      }
    },
    stateVersion() {
      return stateVersion;
    },
    migrate(version, acc) {
      return whole(() => {
        const from = version >>> 0; // componentize-qjs hands a u32 >= 2^31 over as a negative number
        if (from === stateVersion) return acc;
        if (!def.migrate) throw new Error(`cannot migrate accumulators from state version ${from} to ${stateVersion}: the aggregate defines no migrate`);
        const migrated = def.migrate(from, decode(acc, 0, acc.length), ctx);
        if (migrated === undefined) throw new Error("migrate returned undefined: return the accumulator in the current form");
        return encode(migrated);
      });
    },
  };
}

/**
 * The current key's state and timers in a `process` operator, kept by the host: they survive
 * restarts and upgrades, and a call that fails leaves them as they were.
 */
export class KeyedState {
  constructor(key) {
    /** The key's bytes. */
    this.key = key;
  }
  /** The key as text (null when empty; invalid UTF-8 becomes U+FFFD). */
  get keyString() {
    return this.key.length === 0 ? null : decodeUtf8Lossy(this.key);
  }
  /** State `name`, decoded from JSON; undefined when not set. */
  get(name) {
    const bytes = this.getBytes(name);
    if (bytes === undefined) return undefined;
    try {
      return JSON.parse(decodeUtf8(bytes, 0, bytes.length, `state ${JSON.stringify(name)}`));
    } catch (e) {
      throw new Error(`state ${JSON.stringify(name)} cannot be decoded: ${messageOf(e)}`);
    }
  }
  /** Sets state `name` to `value` (stored as JSON text). */
  set(name, value) {
    let json;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw new Error(`state ${JSON.stringify(name)} cannot be encoded: ${messageOf(e)}`);
    }
    if (json === undefined) throw new Error(`state ${JSON.stringify(name)} cannot be encoded: use delete() to remove it`);
    this.setBytes(name, encodeUtf8(json));
  }
  /** State `name` as raw bytes; undefined when not set. */
  getBytes(name) {
    const v = keyed().get(name);
    return v === null || v === undefined ? undefined : v;
  }
  /** Sets state `name` to raw bytes. */
  setBytes(name, bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`setBytes(${JSON.stringify(name)}): value must be a Uint8Array`);
    keyed().set(name, bytes);
  }
  /** Deletes state `name`. */
  delete(name) {
    keyed().delete(name);
  }
  /** Calls `onTimer` for this key once the watermark reaches `time` (ms). */
  registerEventTimer(time) {
    keyed().registerEventTimer(s64Arg(timeValue(time, "timer time")));
  }
  /** Cancels this key's event-time timer at `time` (ms), if any. */
  deleteEventTimer(time) {
    keyed().deleteEventTimer(s64Arg(timeValue(time, "timer time")));
  }
  /** Calls `onTimer` for this key once the host's wall clock reaches `time` (ms since the epoch). */
  registerProcessingTimer(time) {
    keyed().registerProcessingTimer(s64Arg(timeValue(time, "timer time")));
  }
  /** Cancels this key's processing-time timer at `time` (ms), if any. */
  deleteProcessingTimer(time) {
    keyed().deleteProcessingTimer(s64Arg(timeValue(time, "timer time")));
  }
  /** The host's processing time now (ms since the Unix epoch; never moves back). */
  processingTime() {
    return s64ToNumber(keyed().currentProcessingTime(), "processing time");
  }
  /** In `onTimer`: `"event"` or `"processing"`, the kind of timer that fired. */
  get timerDomain() {
    return keyed().timerDomain() === "processing-time" ? "processing" : "event";
  }
}

function keyed() {
  if (host.keyed === null) throw new Error("keyed state is only available in the `process` world");
  return host.keyed;
}

/**
 * A keyed process function: `{ configure?(config), onEvent(event, state, ctx), onTimer?(time, state, ctx) }`.
 * `onEvent` returns outputs as in `transform`; `onTimer` returns payloads or `output({...})`
 * (the timer's key and time by default). `state` is a `KeyedState` of the current key.
 */
export function process(def) {
  checkMembers("process()", def, ["configure", "onEvent", "onTimer"], ["onEvent"]);
  let ready = false;
  let ctx;
  return {
    [WORLD]: "process",
    configure(config) {
      ctx = contextOf(def, config);
      ready = true;
    },
    onEvents(key, batch) {
      if (!ready) throw eventFailure(0, NOT_READY);
      const state = new KeyedState(key);
      const input = new BatchIn(batch);
      const out = new BatchOut(input);
      const n = input.length;
      let i = 0;
      try {
        for (; i < n; i++) {
          const event = new Event(input, i);
          out.emit(event, def.onEvent(event, state, ctx));
        }
      } catch (e) {
        throw eventFailure(i, e);
      }
      return out.finish();
    },
    onTimer(key, time) {
      if (!ready) throw NOT_READY;
      const out = new BatchOut(null);
      try {
        const t = s64ToNumber(time, "timer time");
        if (!def.onTimer) throw new Error(`a timer fired at ${t} but the operator defines no onTimer`);
        const result = def.onTimer(t, new KeyedState(key), ctx);
        if (result === undefined) throw new Error("onTimer returned undefined: return null to emit nothing");
        const list = result === null ? [] : Array.isArray(result) ? result : [result];
        for (let k = 0; k < list.length; k++) {
          const r = list[k];
          if (r === null) continue;
          if (r === undefined) throw new Error(`element ${k} of onTimer's result is undefined`);
          out.pushTimerOutput(key, t, r);
        }
      } catch (e) {
        throw messageOf(e);
      }
      return out.finish();
    },
  };
}

const WORLD_FUNCTIONS = {
  transform: ["configure", "process"],
  aggregate: ["configure", "create", "add", "merge", "finish", "stateVersion", "migrate"],
  process: ["configure", "onEvents", "onTimer"],
};

/**
 * The world functions of a plugin module (used by the generated entry module): its default
 * export, else the module itself, checked against `world` (from weir-plugin.toml).
 */
export function worldExports(module, world, main) {
  const impl = module.default ?? module;
  const fns = WORLD_FUNCTIONS[world];
  if (!fns) throw new Error(`weir-plugin.toml: unknown world ${JSON.stringify(world)} (expected ${Object.keys(WORLD_FUNCTIONS).join(", ")})`);
  const defined = impl?.[WORLD];
  if (defined !== undefined && defined !== world) {
    throw new Error(`${main} is an operator of world "${defined}" but weir-plugin.toml says world = "${world}"`);
  }
  for (const f of fns) {
    if (typeof impl?.[f] !== "function") {
      throw new Error(`${main} must \`export default ${world}({...})\` from "weir" (or export the world's functions: ${fns.join(", ")}); \`${f}\` is missing`);
    }
  }
  return impl;
}
