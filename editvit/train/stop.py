"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (what `kill` and job schedulers send) ask the run to stop
at its next safe point, where it writes a checkpoint and exits with a line saying how to resume.

A second signal while the first is being handled stops at once (KeyboardInterrupt): the previous checkpoint is
kept, as after a SIGKILL. Under DDP every rank learns of a stop through the statistics the ranks all-reduce after
each update, so all ranks stop at the same update.
"""
import signal
import threading
from typing import Any, Dict, Optional


class RunInterrupted(Exception):
    """The run stopped on a signal after writing a checkpoint; the message says how to resume it. `signum` is the
    signal's number (the command line exits with 128 + signum, as a shell reports a process ended by it)."""

    def __init__(self, message: str, signum: int = signal.SIGTERM) -> None:
        super().__init__(message)
        self.signum = int(signum)


class StopRequest:
    """A context that turns SIGINT and SIGTERM into a flag (`requested` holds the signal's name).

    Handlers are installed only in the main thread (Python allows no other), and the previous ones are restored
    on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> 'StopRequest':
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
