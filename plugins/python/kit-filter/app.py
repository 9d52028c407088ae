"""kit-filter (world `transform`): the behavioural kit's filter + projection, in Python.

Config: `{"field": "amount", "min": 10, "keep": ["user", "amount"]}` (defaults `"amount"`, `0`,
`[]` = every field). An event whose payload is not a JSON object fails (dead letter); one whose
`field` is missing, not a number, or below `min` is dropped; any other is re-emitted with the
same key, time and headers and a compact payload of the `keep` fields present, in `keep`'s
order (every field, in input order, when `keep` is empty). See plugins/kit/README.md: the
output must be byte-identical to the other languages' implementations.
"""

import weir
from weir import ConfigError, EventError, JSONError, Projection, loads

_NUMBER = (int, float)
_KIND = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class Settings:
    """The validated configuration."""

    __slots__ = ("field", "min", "keep")  # keep: a Projection, or None for every field

    def __init__(self, config):
        if type(config) is not dict:
            raise ConfigError(f"config must be a JSON object, not {weir.dumps(config).decode()}")
        unknown = sorted(set(config) - {"field", "min", "keep"})
        if unknown:
            raise ConfigError(f"config: unknown field `{unknown[0]}` (expected field, min, keep)")
        self.field = config.get("field", "amount")
        if type(self.field) is not str:
            raise ConfigError(
                f"config field `field`: expected a string, got {weir.dumps(self.field).decode()}"
            )
        self.min = config.get("min", 0)
        if type(self.min) not in _NUMBER:
            raise ConfigError(
                f"config field `min`: expected a number, got {weir.dumps(self.min).decode()}"
            )
        self.min = float(self.min)
        keep = config.get("keep", [])
        if type(keep) is not list or any(type(k) is not str for k in keep):
            raise ConfigError(
                f"config field `keep`: expected a list of strings, got {weir.dumps(keep).decode()}"
            )
        self.keep = Projection(keep) if keep else None


@weir.configure
def configure(config):
    return Settings(config)


@weir.transform
def process(event, settings):
    try:
        doc = loads(event.payload)
    except JSONError as e:
        raise EventError(f"payload is not a JSON object: {e}") from None
    if type(doc) is not dict:
        raise EventError(
            f"payload is not a JSON object: it is {_KIND.get(type(doc), 'a JSON value')}"
        )
    value = doc.get(settings.field)
    # bool is an int in Python, not a number in JSON. Numbers compare as floats (as in the
    # other kits): a huge integer that no float holds fails like a number out of range.
    if type(value) not in _NUMBER:
        return None
    try:
        if float(value) < settings.min:
            return None
    except OverflowError:
        raise EventError(
            f"payload is not a JSON object: number out of range in `{settings.field}`"
        ) from None
    keep = settings.keep
    if keep is None:
        return doc
    return keep.dumps(doc)  # bytes: emitted as they are
