"""Cleaning up when a job's process is asked to stop (SIGTERM), then stopping as asked.

By default SIGTERM ends a Python process at once: ``finally`` blocks do not run, so the scratch
files of an output being written (``.partial``, ``.satvision-*``) stay beside it. While a job runs
in the main thread of a process (the ``satvision`` command line, ``qgis_process``, a script),
:func:`cleanup_on_terminate` turns SIGTERM into an exception that unwinds the job, so that every
cleanup runs, and then delivers the signal again to the handler that was there before: the
process still ends (or does whatever it was set up to do on SIGTERM).

Nothing is installed outside the main thread (QGIS desktop runs algorithms in task threads), when
the current handler was set by C code (Python could not put it back) or when SIGTERM is ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from .errors import OperationCancelled

_installed = False


class Terminated(BaseException):
    """SIGTERM arrived during a job. A BaseException, like KeyboardInterrupt, so that only cleanup code sees it."""


def _raise_terminated(signum: int, frame: Any) -> None:  # noqa: ARG001 - the signal API's signature
    signal.signal(signal.SIGTERM, _ignore)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated()


def _ignore(signum: int, frame: Any) -> None:  # noqa: ARG001
    pass


@contextlib.contextmanager
def cleanup_on_terminate() -> Iterator[None]:
    """Run the ``with`` block so that SIGTERM unwinds it (cleanup runs) before the process stops.

    Nested uses install nothing more; see the module for where nothing is installed at all.
    """
    global _installed
    if _installed or not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None or previous is signal.SIG_IGN:
            raise ValueError("a handler Python cannot restore, or SIGTERM ignored")
        signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):
        yield
        return
    _installed = True
    try:
        yield
    except Terminated:
        _installed = False
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # the default handler ends the process here
        raise OperationCancelled("Terminated (SIGTERM): the run was stopped and no output was written.") from None
    finally:
        if _installed:
            _installed = False
            signal.signal(signal.SIGTERM, previous)
