"""Nexmark q1 (world `transform`), currency conversion over bids, in Python.

Config: `{"query": "q1"}`. Each bid `{"auction", "bidder", "price", "channel", "url",
"dateTime", "extra"}` becomes `{"auction", "bidder", "price", "dateTime", "extra"}` with the
price in euros: the float nearest 0.908 × price (Python divides integers exactly rounded, as the
Rust plugin does). A payload that is not a bid fails, naming the field.
"""

import weir
from weir import ConfigError, EventError, JSONError, loads

_FIELDS = ("auction", "bidder", "price", "dateTime")


@weir.configure
def configure(config):
    if type(config) is not dict or config.get("query") != "q1":
        raise ConfigError(f"nexmark-q1 config: expected {{\"query\": \"q1\"}}, got {config!r}")
    return None


@weir.transform
def process(event, _settings):
    try:
        bid = loads(event.payload)
    except JSONError as e:
        raise EventError(f"payload is not a JSON object: {e}") from None
    if type(bid) is not dict:
        raise EventError("payload is not a JSON object")
    for name in _FIELDS:
        if type(bid.get(name)) is not int:
            raise EventError(f"not a bid: field `{name}` is missing or not an integer")
    extra = bid.get("extra")
    if type(extra) is not str:
        raise EventError("not a bid: field `extra` is not a string")
    return {
        "auction": bid["auction"],
        "bidder": bid["bidder"],
        "price": bid["price"] * 908 / 1000,
        "dateTime": bid["dateTime"],
        "extra": extra,
    }
