"""A weir transform in Python: labels every JSON event with the configured `label`.

Config: `{"label": "hello"}` (default "hello"). An event whose payload is not a JSON object is
sent to the dead-letter subject. Try it on the sample events with `weir run --local` (see
weir-plugin.toml for the build command); see the `weir` package's documentation for what
`process` may return: None (drop), the event, a payload, `weir.Output(...)` or a list.
"""

import weir


@weir.configure
def configure(config):
    label = config.get("label", "hello")
    if type(label) is not str:
        raise weir.ConfigError(f"config field `label`: expected a string, got {label!r}")
    return label


@weir.transform
def process(event, label):
    doc = event.json
    if type(doc) is not dict:
        raise weir.EventError("payload is not a JSON object")
    doc["label"] = label
    return doc
