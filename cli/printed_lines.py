"""The :class:`~satvision.core.feedback.Feedback` of commands that print plain lines: training (whose
trainer draws its own tqdm bars), evaluation and model conversion.

Unlike :class:`cli.progress.FractionBar` it draws no bar and prints where those commands always
printed their lines (stderr for training and evaluation, stdout for generation), so their output
is what it was before they took a feedback object.
"""

from __future__ import annotations

import sys
from typing import TextIO


class PrintedLines:
    """``info`` prints the line to ``file`` (default: stderr, flushed), ``warning`` prints ``Warning: …``
    there; ``quiet`` prints nothing. Progress is not drawn; never cancelled: Ctrl-C stops the command."""

    def __init__(self, quiet: bool = False, file: TextIO | None = None) -> None:
        self.quiet = quiet
        self.file = file

    def progress(self, fraction: float) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.file or sys.stderr, flush=True)

    def warning(self, message: str) -> None:
        self.info(f"Warning: {message}")
