"""Ctrl-C that stops long torch work at a safe point instead of in the middle of an op.

A KeyboardInterrupt raised asynchronously can surface inside a Python callback that PyTorch's
C++ calls where no exception may pass (a storage finaliser, a dispatch or autograd hook), and
the process then aborts instead of stopping cleanly. :func:`held_interrupts` holds SIGINT (and
SIGTERM where it is mapped to KeyboardInterrupt) during the work and raises KeyboardInterrupt at
the checkpoints the work calls between steps. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def held_interrupts() -> Iterator[Callable[[], None]]:
    """Hold Ctrl-C during the block; yields ``checkpoint()``, which raises KeyboardInterrupt
    when one arrived. One held at the end of the block is raised there."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []
    signals = [signal.SIGINT]
    if signal.getsignal(signal.SIGTERM) is signal.default_int_handler:
        signals.append(signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def hold(signum: int, frame: Any) -> None:
        if received:  # asked twice: stop now
            restore()
            raise KeyboardInterrupt
        received.append(signum)

    def checkpoint() -> None:
        if received:
            raise KeyboardInterrupt

    for signum in signals:
        signal.signal(signum, hold)
    try:
        yield checkpoint
    finally:
        restore()
    checkpoint()
