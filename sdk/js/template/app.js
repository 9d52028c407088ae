// {{name}}: a weir transform in JavaScript — keeps orders of at least `min` and tags them.
//
// The function runs once per event. Return null to drop the event, the event itself to pass it
// on unchanged, a new payload (an object becomes JSON; a string or Uint8Array is used as is),
// event.with({ payload, key, time, headers }) to change more, or an array to emit several.
// Throwing sends this one event to the dead-letter subject with the error's message.
//
// Try it: build out.wasm, name it as an operator's `plugin` in a pipeline file, then
//   weir run <pipeline.toml> --local --input events.jsonl

import { EventError, log, transform } from "weir";

export default transform({
  // `config` is the operator's `config` table from the pipeline file, parsed ({} when absent).
  configure(config) {
    const min = config.min ?? 0;
    if (typeof min !== "number") throw new Error(`config.min must be a number, got ${JSON.stringify(min)}`);
    log.info("{{name}} starting, min =", min);
    return { min };
  },

  process(event, { min }) {
    const order = event.json; // the payload parsed as JSON (an EventError if it is not JSON)
    if (typeof order !== "object" || order === null) throw new EventError("payload is not a JSON object");
    if (typeof order.amount !== "number" || order.amount < min) return null;
    return { ...order, big: order.amount >= 100 };
  },
});
