"""Plugin logging into the host's structured logs, tagged with the plugin: `weir.log.info(...)`.

Python components are built without WASI (see sdk/python/build.sh), so at run time there is no
stdout or stderr to write to: the first call from the host (`configure`) points `sys.stdout` at
`info` and `sys.stderr` at `warn`, one log record per line, so that `print` and stray warnings
end up in the host's logs too. Before that (componentize-py importing the app at build time)
and outside a component (unit tests), messages go to the real stderr.
"""

import sys

try:
    from wit_world.imports import log as _wit_log

    _LEVELS = (
        _wit_log.Level.TRACE,
        _wit_log.Level.DEBUG,
        _wit_log.Level.INFO,
        _wit_log.Level.WARN,
        _wit_log.Level.ERROR,
    )
except ImportError:  # not inside a component build
    _wit_log = None
    _LEVELS = None
_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")

__all__ = ["trace", "debug", "info", "warn", "error"]

_host_ready = False


def _emit(level, message):
    if _wit_log is not None and _host_ready:
        _wit_log.log(_LEVELS[level], message)
    else:
        # At build time (componentize-py pre-initializing the app) or in tests.
        sys.__stderr__.write(f"[{_NAMES[level]}] {message}\n")


def trace(message):
    _emit(0, str(message))


def debug(message):
    _emit(1, str(message))


def info(message):
    _emit(2, str(message))


def warn(message):
    _emit(3, str(message))


def error(message):
    _emit(4, str(message))


def host_ready():
    """Called by the world glue on the first call from the host: logging may use the import,
    and stdout/stderr (stubbed in the component) are pointed at the log."""
    global _host_ready
    if _host_ready:
        return
    _host_ready = True
    if _wit_log is not None and sys.platform == "wasi":
        sys.stdout = LogWriter(2)
        sys.stderr = LogWriter(3)


class LogWriter:
    """A text stream writing each line as one log record at `level`."""

    def __init__(self, level):
        self.level = level
        self.pending = ""

    def write(self, text):
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            _emit(self.level, line)
        return len(text)

    def flush(self):
        if self.pending:
            _emit(self.level, self.pending)
            self.pending = ""

    def isatty(self):
        return False
