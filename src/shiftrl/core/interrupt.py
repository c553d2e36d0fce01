"""Ctrl-C during training: finish the compiled call in flight, save a checkpoint, stop.

A compiled call cannot be interrupted, and a KeyboardInterrupt raised at an arbitrary
point inside JAX's dispatch can leave donated buffers half-owned (a segfault at exit was
seen with `--algo ssar-cql`). So while a training loop runs, the first SIGINT only sets
`requested`, which the loop reads between compiled calls (each a few seconds at most, see
`training.loop.ChunkPacer`): it then writes a resumable checkpoint and raises
KeyboardInterrupt itself. A second SIGINT interrupts at once, as Python usually does.
Outside the main thread (no signal handlers there) or where SIGINT is ignored, nothing
changes.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


class StopRequest:
    """A context manager; `requested` turns True at the first Ctrl-C inside it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a signal handler may run in the middle of another print
        os.write(
            2,
            b"\nshiftrl: stopping after the current chunk of steps to save a checkpoint "
            b"(Ctrl-C again to stop at once, without one)\n",
        )

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested (the caller has saved)."""
        if self.requested:
            raise KeyboardInterrupt
