"""The core's :class:`~satvision.core.feedback.Feedback` over a ``QgsProcessingFeedback``."""

from __future__ import annotations

import time

from qgis.core import QgsProcessingFeedback


class ProcessingFeedback:
    """Progress to ``setProgress`` (percent), cancellation from ``isCanceled``, log lines to
    ``pushInfo`` and warnings to ``pushWarning``.

    With ``model_loading_started`` (a ``time.monotonic()`` stamp taken when the algorithm said
    "Loading PyTorch and the model…"), the core's first "Model …" line, which it logs once the model
    is loaded, is preceded by "Model loaded in N s" and the progress text becomes "Running the model…".
    """

    def __init__(self, feedback: QgsProcessingFeedback, model_loading_started: float | None = None) -> None:
        self.feedback = feedback
        self._loading_started = model_loading_started

    def progress(self, fraction: float) -> None:
        self.feedback.setProgress(100.0 * fraction)

    def cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        if self._loading_started is not None and message.startswith("Model "):
            self.feedback.pushInfo(f"Model loaded in {time.monotonic() - self._loading_started:.1f} s")
            self.feedback.setProgressText("Running the model…")
            self._loading_started = None  # said once
        self.feedback.pushInfo(message)

    def warning(self, message: str) -> None:
        self.feedback.pushWarning(message)
