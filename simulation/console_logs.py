"""What the Lambda handlers print, kept off the responder's screen (the simulation's CloudWatch Logs).

On AWS each function's output (Powertools' structured JSON logs on stdout) goes to its CloudWatch
log group. In the simulation the handlers run in this process, from moto's Step Functions threads
and, for the trigger Lambdas, from the thread that delivers the event; their lines would land in the
middle of the console's progress. `lambda_output_to(sink)` routes every line written while a
handler runs (lambda_local.running_function() is set) or from any thread but the main one to `sink`;
the main thread's own output is untouched.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from simulation import lambda_local

Sink = Callable[[str], None]


class _Router(io.TextIOBase):
    def __init__(self, original: TextIO, sink: Sink) -> None:
        self.original = original
        self.sink = sink
        self._partial = threading.local()

    @staticmethod
    def from_lambda() -> bool:
        return lambda_local.running_function() is not None or threading.current_thread() is not threading.main_thread()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.from_lambda():
            return self.original.write(text)
        buffered = getattr(self._partial, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._partial.text = rest
        for line in lines:
            if line.strip():
                self.sink(line)
        return len(text)

    def flush(self) -> None:
        if not self.from_lambda():
            self.original.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8") or "utf-8"

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()


def _stream_handlers(streams: set[int]) -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    found: list[logging.StreamHandler[Any]] = []
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and (
                id(handler.stream) in streams or logger.name.startswith("irforensics")
            ):
                found.append(handler)
    return found


@contextmanager
def lambda_output_to(sink: Sink) -> Iterator[None]:
    """Route the handlers' stdout and stderr (and the Powertools loggers bound to them) to `sink`."""
    out, err = sys.stdout, sys.stderr
    routed_out, routed_err = _Router(out, sink), _Router(err, sink)
    # Powertools binds sys.stdout when a Logger is made (at import): re-point those handlers too.
    handlers = _stream_handlers({id(out), id(err), id(sys.__stdout__), id(sys.__stderr__)})
    saved = [(handler, handler.stream) for handler in handlers]
    sys.stdout, sys.stderr = routed_out, routed_err
    for handler, stream in saved:
        handler.setStream(routed_err if stream in (err, sys.__stderr__) else routed_out)
    try:
        yield
    finally:
        for handler, stream in saved:
            handler.setStream(stream)
        sys.stdout, sys.stderr = out, err
