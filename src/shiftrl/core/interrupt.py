"""Ctrl-C (or a scheduler's SIGTERM) during training: finish the compiled call in flight,
save a checkpoint, stop.

A compiled call cannot be interrupted, and a KeyboardInterrupt raised at an arbitrary
point inside JAX's dispatch can leave donated buffers half-owned (a segfault at exit was
seen with `--algo ssar-cql`). So while a training loop runs, the first SIGINT only sets
`requested`, which the loop reads between compiled calls (each a few seconds at most, see
`training.loop.ChunkPacer`): it then writes a resumable checkpoint and raises
KeyboardInterrupt itself. A second SIGINT interrupts at once, as Python usually does.

SIGTERM is treated the same way: SLURM and other schedulers send it on preemption or at
the time limit and kill the job some seconds later (SLURM's KillWait, 30 s by default), time
enough to finish a chunk and save. Only the same signal twice stops at once: a benchmark
worker that got the terminal's Ctrl-C and then its sweep's SIGTERM still saves. Outside
the main thread (no signal handlers there), where SIGINT is ignored, or where SIGTERM
already has a handler of the program's own, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def _may_handle(sig: int) -> bool:
    """Whether to install our handler for `sig` here: only in the main thread (no signal
    handlers elsewhere); SIGINT unless it is ignored; SIGTERM only over the default, so a
    program's own SIGTERM handling stays."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(sig)
    if sig == signal.SIGINT:
        return previous is not signal.SIG_IGN
    return previous is signal.SIG_DFL


class StopRequest:
    """A context manager; `requested` turns True at the first Ctrl-C or SIGTERM inside it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._seen: set[int] = set()

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if _may_handle(sig):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = _NAMES.get(signum, f"signal {signum}")
        if signum in self._seen:  # the same one again: stop now, without a checkpoint
            raise KeyboardInterrupt
        self._seen.add(signum)
        if self.requested:  # Ctrl-C, then a sweep's SIGTERM to its workers: one request
            return
        self.requested = True
        # os.write, not print: a signal handler may run in the middle of another print
        os.write(
            2,
            f"\nshiftrl: {name}: stopping after the current chunk of steps to save a "
            f"checkpoint ({name} again to stop at once, without one)\n".encode(),
        )

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested (the caller has saved)."""
        if self.requested:
            raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM raises KeyboardInterrupt, as Ctrl-C does (main thread, over the
    default handler only). For a process that runs no training loop itself, a benchmark
    sweep waiting on its workers: `kill PID` then stops it through its cleanup (workers
    told to save, study record written, lock released) instead of killing it outright."""
    if not _may_handle(signal.SIGTERM):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
