"""pip's dry-run report -> the exact packages to install and their download size.

``pip install --dry-run --report FILE`` (pip >= 22.2) resolves without installing and lists each
distribution with its download URL; the size comes from the file (a wheelhouse) or the server's
``Content-Length`` (best effort: None when unknown).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import SatVisionError
from .protected import is_protected


@dataclass(frozen=True)
class PlannedPackage:
    name: str
    version: str
    url: str
    requested: bool
    size: int | None = None

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class Plan:
    packages: list[PlannedPackage]
    #: protected distributions the resolution wanted (left out: QGIS's own stay in use)
    kept_from_qgis: list[str] = field(default_factory=list)

    @property
    def download_bytes(self) -> int:
        return sum(package.size or 0 for package in self.packages)

    @property
    def unknown_sizes(self) -> int:
        return sum(package.size is None for package in self.packages)

    def describe(self) -> list[str]:
        lines = [f"  {package.pin}  {format_size(package.size)}" for package in self.packages]
        total = f"Download: {format_size(self.download_bytes)}"
        if self.unknown_sizes:
            total += f" (+ {self.unknown_sizes} package(s) of unknown size)"
        lines.append(f"{len(self.packages)} package(s) to install. {total}.")
        if self.kept_from_qgis:
            lines.append("Kept from QGIS's Python, never replaced: " + ", ".join(self.kept_from_qgis))
        return lines


def format_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def parse_report(report: dict[str, Any]) -> Plan:
    """The plan in pip's installation report (format version 1), protected distributions left out."""
    if str(report.get("version")) != "1":
        raise SatVisionError(f"pip wrote an installation report of unknown format {report.get('version')!r}; update pip in QGIS's Python.")
    packages: list[PlannedPackage] = []
    kept: list[str] = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name, version = metadata.get("name", ""), metadata.get("version", "")
        if is_protected(name):
            kept.append(f"{name} (the resolution asked for {version})")
            continue
        packages.append(PlannedPackage(name, version, item.get("download_info", {}).get("url", ""), bool(item.get("requested"))))
    return Plan(packages, kept)


def read_report(path: Path) -> Plan:
    try:
        return parse_report(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise SatVisionError(f"pip did not write a readable installation report ({error}).") from error


def with_sizes(plan: Plan, size_of: Callable[[str], int | None] | None = None) -> Plan:
    size_of = size_of or download_size
    with ThreadPoolExecutor(max_workers=8) as pool:  # one HEAD request per package: in parallel
        sizes = list(pool.map(lambda package: size_of(package.url), plan.packages))
    return Plan([PlannedPackage(p.name, p.version, p.url, p.requested, size) for p, size in zip(plan.packages, sizes)],
                plan.kept_from_qgis)


def download_size(url: str, timeout: float = 10.0) -> int | None:
    """Size of the file at ``url``: a local file's size, or the server's Content-Length; None if unknown."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        return path.stat().st_size if path.is_file() else None
    if parsed.scheme not in ("http", "https"):
        return None
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310 - http(s) only, checked above
            length = response.headers.get("Content-Length")
    except (OSError, ValueError):
        return None
    return int(length) if length and length.isdigit() else None
