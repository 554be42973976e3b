"""One feedback object for long jobs: progress, cancellation and messages.

Jobs take one ``feedback`` (as QGIS passes one ``QgsProcessingFeedback``) instead of separate
progress, cancellation and log callables. A public entry point accepts ``feedback=None`` and uses
:class:`SilentFeedback` then, once; the functions it calls take a :class:`Feedback`. A job that
hands part of its progress bar to a step passes ``ShareFeedback(feedback, start, end)``.

Implementations: :class:`SilentFeedback` (nothing), ``algorithms.feedback.ProcessingFeedback``
(QGIS), ``cli.progress.FractionBar`` (terminal, with a progress bar), ``cli.printed_lines.PrintedLines``
(terminal, lines only, for commands that draw their own bars) and :class:`CallbackFeedback` for
callers that record progress in plain callables (benchmarks, a step whose messages are muted).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable


@runtime_checkable
class Feedback(Protocol):
    """What a job reports to, and asks whether to stop."""

    def progress(self, fraction: float) -> None:
        """The share of the job done, from 0 to 1."""

    def cancelled(self) -> bool:
        """True once the user asked to stop: the job then raises ``OperationCancelled``."""

    def info(self, message: str) -> None:
        """A line for the log."""

    def warning(self, message: str) -> None:
        """Something the user should look at; the job goes on."""


class SilentFeedback:
    """Reports nothing and never cancels: the feedback of callers that pass none."""

    def progress(self, fraction: float) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


class ShareFeedback:
    """``feedback`` for one step that covers ``start``–``end`` of its progress bar: the step's
    progress 0–1 is mapped onto that share (the idea of ``QgsProcessingMultiStepFeedback``);
    cancellation and messages go to ``feedback`` unchanged."""

    def __init__(self, feedback: Feedback, start: float, end: float) -> None:
        self.feedback = feedback
        self.start = start
        self.end = end

    def progress(self, fraction: float) -> None:
        self.feedback.progress(self.start + (self.end - self.start) * fraction)

    def cancelled(self) -> bool:
        return self.feedback.cancelled()

    def info(self, message: str) -> None:
        self.feedback.info(message)

    def warning(self, message: str) -> None:
        self.feedback.warning(message)


class CallbackFeedback:
    """A :class:`Feedback` from plain callables, each optional (e.g. a benchmark recording progress,
    or a step whose messages are dropped). Without ``warn``, warnings go to ``log`` as ``Warning: …``."""

    def __init__(
        self,
        progress: Callable[[float], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        log: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._log = log
        self._warn = warn

    def progress(self, fraction: float) -> None:
        if self._progress is not None:
            self._progress(fraction)

    def cancelled(self) -> bool:
        return self._is_cancelled is not None and bool(self._is_cancelled())

    def info(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def warning(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)
        elif self._log is not None:
            self._log(f"Warning: {message}")
