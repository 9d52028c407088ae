// Part of weir.js (the JavaScript SDK): host imports (bound by the entry module build.sh
// generates), errors and logging. Internal: plugins import "weir".

// ---------------------------------------------------------------------------------------------
// Host imports (bound by the generated entry module) and errors

export const host = {
  bound: false,
  /** `log(level, message)`, level one of trace|debug|info|warn|error. */
  log: null,
  /** The `keyed` interface (process world only): get, set, delete, timers, processing time. */
  keyed: null,
  /** How the toolchain represents WIT s64 values: "number" (componentize-qjs) or "bigint" (jco/componentize-js). */
  s64: "number",
};

/**
 * Binds the host imports. Called by the entry module build.sh generates (and by tests); plugin
 * code never calls it. `imports`: `{ log(level, message), keyed?, s64?: "number" | "bigint" }`.
 */
export function bindHost(imports) {
  if (typeof imports.log !== "function") throw new Error("bindHost: `log` must be a function");
  host.log = imports.log;
  host.keyed = imports.keyed ?? null;
  host.s64 = imports.s64 ?? "number";
  if (host.s64 !== "number" && host.s64 !== "bigint") {
    throw new Error(`bindHost: s64 must be "number" or "bigint", not ${JSON.stringify(host.s64)}`);
  }
  host.bound = true;
}

/** The failure of one event. Any thrown error does the same; this one just says so. */
export class EventError extends Error {
  constructor(message) {
    super(message);
    this.name = "EventError";
  }
}

/** The text of a thrown value, for the host (dead-letter headers, refusal messages). */
export function messageOf(e) {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === "string") return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

/** The WIT `event-error` for event `index`, as a value to throw from an export. */
export function eventFailure(index, e) {
  return { index, message: messageOf(e) };
}

// ---------------------------------------------------------------------------------------------
// Logging

function hostLog(level, args) {
  if (!host.bound) {
    throw new Error("weir log called while the component is being built; log from configure or the operator functions");
  }
  let message = "";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (i > 0) message += " ";
    if (typeof a === "string") message += a;
    else if (a instanceof Error) message += a.stack || a.message;
    else if (a instanceof Uint8Array) message += `Uint8Array(${a.length})`;
    else {
      try {
        message += JSON.stringify(a) ?? String(a);
      } catch {
        message += String(a);
      }
    }
  }
  host.log(level, message);
}

/** Logging into the host's structured logs, tagged with the plugin: `log.info("x", value)`. */
export const log = Object.freeze({
  trace: (...args) => hostLog("trace", args),
  debug: (...args) => hostLog("debug", args),
  info: (...args) => hostLog("info", args),
  warn: (...args) => hostLog("warn", args),
  error: (...args) => hostLog("error", args),
});
