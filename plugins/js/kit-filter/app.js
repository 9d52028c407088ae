// kit-filter in JavaScript: the behavioural kit's filter + projection (plugins/kit/README.md).
//
// Config: {"field": "amount", "min": 10, "keep": ["user", "amount", "country"]} (defaults: field
// "amount", min 0, keep [] = every field). An event whose payload is not a JSON object is
// dead-lettered; one whose `field` is missing, not a number or below `min` is dropped; the others
// are emitted with the same key, time and headers and a compact payload of the `keep` fields
// present, in the order of `keep`.
//
// Limitation of JavaScript objects (only with an empty `keep`): keys that look like array indices
// ("0", "42") are re-serialized first, in numeric order, whatever their place in the input.

import { EventError, transform } from "weir";

export default transform({
  configure(config) {
    const field = config.field ?? "amount";
    const min = config.min ?? 0;
    const keep = config.keep ?? [];
    if (typeof field !== "string") throw new Error(`config.field must be a string, got ${JSON.stringify(field)}`);
    if (typeof min !== "number") throw new Error(`config.min must be a number, got ${JSON.stringify(min)}`);
    if (!Array.isArray(keep) || !keep.every((k) => typeof k === "string")) {
      throw new Error(`config.keep must be an array of field names, got ${JSON.stringify(keep)}`);
    }
    // A repeated name is kept once, at its first place (as a JSON object holds one per name).
    const names = [...new Set(keep)];
    // `"name":` of every kept field, serialized once.
    const prefixes = names.map((k) => JSON.stringify(k) + ":");
    return { field, min, keep: names, prefixes };
  },

  process(event, { field, min, keep, prefixes }) {
    let obj;
    try {
      obj = JSON.parse(event.text);
    } catch (e) {
      throw new EventError(`payload is not a JSON object: ${e.message}`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      throw new EventError(`payload is not a JSON object: it is ${Array.isArray(obj) ? "an array" : obj === null ? "null" : `a ${typeof obj}`}`);
    }
    const value = Object.hasOwn(obj, field) ? obj[field] : undefined;
    if (typeof value !== "number" || value < min) return null;
    if (keep.length === 0) return JSON.stringify(obj);
    // One native call when no kept value is an object or array: JSON.stringify with the names as
    // its replacer list writes the names present, in that order (a list also filters nested
    // objects, so those take the loop).
    let flat = true;
    for (let i = 0; i < keep.length; i++) {
      const v = obj[keep[i]];
      if (typeof v === "object" && v !== null) {
        flat = false;
        break;
      }
    }
    if (flat) return JSON.stringify(obj, keep);
    let out = "{";
    for (let i = 0; i < keep.length; i++) {
      const k = keep[i];
      if (!Object.hasOwn(obj, k)) continue;
      if (out.length > 1) out += ",";
      out += prefixes[i] + JSON.stringify(obj[k]);
    }
    return out + "}";
  },
});
