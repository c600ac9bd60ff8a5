"""Signals in workers: Ctrl-C and SIGTERM interrupt a trial, but never a store write."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def deferred_interrupts(reraise: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM until the block ends (for store writes that must not be cut).

    Yields the list of signals received meanwhile; with ``reraise`` a held signal raises
    KeyboardInterrupt when the block ends.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received and reraise:
        raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C (so a terminated worker records its trial as interrupted)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
