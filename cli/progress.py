"""The terminal's :class:`~satvision.core.feedback.Feedback`: a progress bar for jobs that report a
completed fraction (0–1), with log lines and warnings above it."""

from __future__ import annotations

import sys
from typing import Any


class FractionBar:
    """A tqdm bar fed with fractions; ``info``/``warning`` print above it; ``quiet`` shows nothing but
    the warnings, on stderr. Never cancelled: Ctrl-C stops the command (``KeyboardInterrupt``)."""

    def __init__(self, quiet: bool = False) -> None:
        from tqdm import tqdm

        self.quiet = quiet
        self._tqdm = tqdm
        self.bar: Any = None if quiet else tqdm(total=1000, unit="‰", leave=False, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def progress(self, fraction: float) -> None:
        if self.bar is not None and int(1000 * fraction) != self.bar.n:  # redraw only when the bar moves
            self.bar.n = int(1000 * fraction)
            self.bar.refresh()

    def cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        if not self.quiet:
            self._tqdm.write(message)

    def warning(self, message: str) -> None:
        # quiet commands print their result (JSON) on stdout: their warnings go to stderr, never into it
        self._tqdm.write(f"warning: {message}", file=sys.stderr if self.quiet else None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "FractionBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
