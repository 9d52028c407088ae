// kit-sum in JavaScript: the behavioural kit's per-key count and sum (plugins/kit/README.md).
//
// Config: {"field": "amount"} (default "amount"). Each event's payload must be a JSON object whose
// `field` is an integer, or the event is dead-lettered. The accumulator is the JSON text
// {"count": n, "sum": s}, `s` a Number while it is exact (|s| < 2^53) and a decimal string
// beyond; sums outside the signed 64-bit range are refused. `finish` emits
// {"key":..,"start":..,"end":..,"count":..,"sum":..} in this order, compact.

import { EventError, aggregate } from "weir";

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** a + b exactly, as a Number while exact and as a decimal string beyond; refuses i64 overflow. */
function addSums(a, b) {
  if (typeof a === "number" && typeof b === "number") {
    const s = a + b;
    if (Number.isSafeInteger(s)) return s;
  }
  const s = BigInt(a) + BigInt(b);
  if (s < I64_MIN || s > I64_MAX) throw new EventError(`sum ${s} overflows a 64-bit integer`);
  return s >= BigInt(Number.MIN_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s.toString();
}

export default aggregate({
  configure(config) {
    const field = config.field ?? "amount";
    if (typeof field !== "string") throw new Error(`config.field must be a string, got ${JSON.stringify(field)}`);
    return { field };
  },

  create() {
    return { count: 0, sum: 0 };
  },

  add(acc, event, { field }) {
    let obj;
    try {
      obj = JSON.parse(event.text);
    } catch (e) {
      throw new EventError(`payload is not a JSON object: ${e.message}`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new EventError("payload is not a JSON object");
    if (!Object.hasOwn(obj, field)) throw new EventError(`payload has no field ${JSON.stringify(field)}`);
    const v = obj[field];
    if (!Number.isInteger(v)) throw new EventError(`field ${JSON.stringify(field)} is not an integer: ${JSON.stringify(v)}`);
    if (!Number.isSafeInteger(v)) throw new EventError(`field ${JSON.stringify(field)} is ${v}, beyond JavaScript's exact integer range`);
    acc.count += 1;
    acc.sum = addSums(acc.sum, v);
  },

  merge(a, b) {
    return { count: a.count + b.count, sum: addSums(a.sum, b.sum) };
  },

  finish(key, window, acc) {
    return `{"key":${JSON.stringify(key ?? "")},"start":${window.start},"end":${window.end},"count":${acc.count},"sum":${acc.sum}}`;
  },
});
