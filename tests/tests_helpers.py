"""Helpers importable by test modules (conftest fixtures are not importable)."""

from __future__ import annotations

import json
import subprocess


def qgis_process_json(completed: subprocess.CompletedProcess) -> dict:
    """The JSON answer of ``qgis_process --json`` (stdout), failing with its output on error."""
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    return json.loads(completed.stdout)
