"""`forward`: every event out unchanged — measures the Python SDK's per-event cost."""

import weir


@weir.transform
def process(event, config):
    return event
