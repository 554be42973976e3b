"""Runs pip in a child process: its output line by line to a callback, killed on cancellation."""

from __future__ import annotations

import os
import queue
import subprocess  # nosec B404 - runs the QGIS Python's pip with an argument list, no shell
import threading
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable, Sequence

from ..core.errors import OperationCancelled

#: variables that would make the child Python see other packages than QGIS's own (the caller's
#: PYTHONPATH, a virtual environment) or make pip ask questions
#: no console window flashing up on Windows for each child process (0 elsewhere)
NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)
DROPPED_VARIABLES = ("PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET", "PIP_PREFIX")


@dataclass(frozen=True)
class PipResult:
    returncode: int
    lines: list[str]

    def tail(self, count: int = 15) -> str:
        return "\n".join(self.lines[-count:])

    def errors(self) -> list[str]:
        """pip's ``ERROR:`` lines (what failed), else its last lines."""
        found = [line for line in self.lines if line.lstrip().startswith("ERROR:")]
        return found or self.lines[-5:]


@dataclass(frozen=True)
class Interpreter:
    """QGIS's Python, and where a newer pip was put when its own is too old (None: its own pip)."""

    path: PurePath
    pip_home: str | None = None


def pip_environment(base: dict[str, str] | None = None, pip_home: str | None = None) -> dict[str, str]:
    """The environment for the child pip: QGIS's Python as it starts on its own (no caller
    PYTHONPATH, no user site), unbuffered output, no prompts, no version check, no --user;
    ``pip_home`` (a newer pip) alone on PYTHONPATH."""
    environment = {key: value for key, value in (os.environ if base is None else base).items() if key not in DROPPED_VARIABLES}
    if pip_home:
        environment["PYTHONPATH"] = pip_home
    environment.update({
        "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1", "PYTHONIOENCODING": "utf-8",
        "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_USER": "0", "PIP_PROGRESS_BAR": "off",
    })
    return environment


def run_pip(python: Interpreter | PurePath | str, arguments: Sequence[str], on_line: Callable[[str], None],
            is_cancelled: Callable[[], bool] = lambda: False, poll_seconds: float = 0.2) -> PipResult:
    """``python -m pip ARGUMENTS``; each output line (stdout and stderr) goes to ``on_line`` in the
    calling thread. Raises :class:`OperationCancelled` after killing pip when ``is_cancelled()``."""
    interpreter = python if isinstance(python, Interpreter) else Interpreter(PurePath(python))
    command = [str(interpreter.path), "-m", "pip", *arguments]
    process = subprocess.Popen(  # nosec B603 - an argument list, no shell
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=pip_environment(pip_home=interpreter.pip_home), text=True, encoding="utf-8", errors="replace", bufsize=1, creationflags=NO_WINDOW,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    stream = process.stdout  # a pipe: stdout=PIPE above

    def read() -> None:
        for line in stream or ():
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    reader = threading.Thread(target=read, name="satvision-pip-output", daemon=True)
    reader.start()
    collected: list[str] = []
    finished = False
    try:
        while not finished:
            if is_cancelled():
                _stop(process)
                raise OperationCancelled("Installation cancelled: pip was stopped; the previous packages stay in use.")
            try:
                line = lines.get(timeout=poll_seconds)
            except queue.Empty:
                continue
            if line is None:
                finished = True
            else:
                collected.append(line)
                on_line(line)
        return PipResult(process.wait(), collected)
    finally:
        if process.poll() is None:
            _stop(process)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
