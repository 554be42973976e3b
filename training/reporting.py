"""Writing training results: JSON-safe metrics, ``training.json`` and comparison tables (atomic files)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.atomic import atomic_path


def clean_metrics(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: NaN → None, floats rounded to 6 digits, nested objects cleaned too."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float):
            out[key] = None if math.isnan(value) else round(value, 6)
        elif isinstance(value, Mapping):
            out[key] = clean_metrics(value)
        else:
            out[key] = value
    return out


def jsonable(value: Any) -> Any:
    """Settings (dataclasses, paths, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value):
        return {item.name: jsonable(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_comparison(output: Path, rows: Sequence[Mapping[str, Any]], markdown: str) -> None:
    """``comparison.md`` (the table) and ``comparison.csv`` (every field of every row) in ``output``."""
    with atomic_path(Path(output) / "comparison.md") as temporary:
        temporary.write_text(markdown + "\n", encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(Path(output) / "comparison.csv") as temporary:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
