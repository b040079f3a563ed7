"""Ctrl-C that is never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread is when the signal arrives. When that
is inside a callback whose exceptions Python only prints (a weakref callback of the import system,
a ``__del__``), the interrupt is swallowed and the command carries on. The handler here also
remembers the signal, so that ``up``, which must not leave a stack half started, can ``check()``
after each step: a swallowed Ctrl-C is raised again there. (The REPL takes Ctrl-C as an edit or a
cancel, so the CLI does not check at its end.) Signal state is process-wide by nature; this module
holds it, and nothing else.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received = threading.Event()


def install() -> None:
    """Remember every SIGINT; a SIGINT that is ignored (a background job) stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came, even when its first raise was swallowed."""
    if _received.is_set():
        raise KeyboardInterrupt
