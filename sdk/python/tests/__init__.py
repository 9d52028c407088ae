"""Tests of the Python SDK and the Python plugins, run with the host's Python (no component):
`python3 -m unittest discover -s sdk/python/tests -t sdk/python` from the repository root."""
