// Nexmark q1 (world `transform`), currency conversion over bids, in JavaScript.
//
// Config: {"query": "q1"}. Each bid {"auction", "bidder", "price", "channel", "url", "dateTime",
// "extra"} becomes {"auction", "bidder", "price", "dateTime", "extra"} with the price in euros:
// price × 908 is exact below 2^53, and dividing it by 1000 gives the double nearest
// 0.908 × price, as the Rust plugin does. A payload that is not a bid fails, naming the field.

import { EventError, transform } from "weir";

const FIELDS = ["auction", "bidder", "price", "dateTime"];

export default transform({
  configure(config) {
    if (config === null || typeof config !== "object" || config.query !== "q1") {
      throw new Error(`nexmark-q1 config: expected {"query": "q1"}, got ${JSON.stringify(config)}`);
    }
    return null;
  },

  process(event) {
    let bid;
    try {
      bid = JSON.parse(event.text);
    } catch (e) {
      throw new EventError(`payload is not a JSON object: ${e.message}`);
    }
    if (bid === null || typeof bid !== "object" || Array.isArray(bid)) {
      throw new EventError("payload is not a JSON object");
    }
    for (const name of FIELDS) {
      if (!Number.isSafeInteger(bid[name])) {
        throw new EventError(`not a bid: field \`${name}\` is missing or not a safe integer`);
      }
    }
    if (typeof bid.extra !== "string") throw new EventError("not a bid: field `extra` is not a string");
    return JSON.stringify({
      auction: bid.auction,
      bidder: bid.bidder,
      price: (bid.price * 908) / 1000,
      dateTime: bid.dateTime,
      extra: bid.extra,
    });
  },
});
