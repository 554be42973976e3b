"""Disk space: refuse a job up front when its outputs clearly cannot fit, and explain a full disk.

A full disk shows in many shapes: ``OSError`` ENOSPC from Python, SQLite's "database or disk is
full" inside a GDAL message that quotes kilobytes of SQL, or nothing at all: rasterio only logs
GDAL's write errors, leaving a truncated GeoTIFF. :func:`check_written` (called by
:mod:`core.atomic` before an output is renamed into place) catches the silent case, and
:func:`explain_no_space` turns all of them into one :class:`NoSpaceError` that says where and how
much.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import SatVisionError

#: An output whose folder has less free space than this once it is written probably hit the full
#: disk: GDAL (through rasterio) and OGR's text drivers do not report failed writes.
NEARLY_FULL_BYTES = 256 * 1024

#: Up front, a job is refused only when the free space is under this share of its estimate: the
#: estimate counts uncompressed pixels, and the GeoTIFFs are compressed.
CLEARLY_SHORT_SHARE = 0.25

_NO_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_SPACE_TEXT = re.compile(
    r"no space left on device|database or disk is full|disk is full|not enough space on the disk|disk quota exceeded",
    re.IGNORECASE,
)


class NoSpaceError(SatVisionError):
    """The disk of an output folder is (or would be) full."""

    def __init__(self, message: str, folder: Path | None = None) -> None:
        super().__init__(message)
        self.folder = folder


def raster_bytes(width: int, height: int, bands: int, dtype: str) -> int:
    """Uncompressed size of a raster."""
    return int(width) * int(height) * int(bands) * np.dtype(dtype).itemsize


def megabytes(count: float) -> str:
    return f"{count / 1e6:,.1f} MB" if count < 1e10 else f"{count / 1e9:,.1f} GB"


def free_bytes(folder: Path) -> int | None:
    """Free space for this user in ``folder`` (or its nearest existing parent); None when unknown."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_free_space(needs: Mapping[Path, int]) -> None:
    """Refuse before any work when the folders' disks clearly lack the space (see :data:`CLEARLY_SHORT_SHARE`).

    ``needs`` maps folders to the bytes written there; folders on one disk add up.
    """
    by_disk: dict[object, tuple[Path, int]] = {}
    for folder, count in needs.items():
        folder = Path(folder)
        try:
            disk: object = os.stat(_existing(folder)).st_dev
        except OSError:
            disk = folder
        first, total = by_disk.get(disk, (folder, 0))
        by_disk[disk] = (first, total + int(count))
    for folder, needed in by_disk.values():
        free = free_bytes(folder)
        if free is not None and free < needed * CLEARLY_SHORT_SHARE:
            raise NoSpaceError(no_space_message(folder, needed, free), folder)


def no_space_message(folder: Path, needed: int | None, free: int | None) -> str:
    amount = f": about {megabytes(needed)} needed" if needed else ""
    available = f", {megabytes(free)} free" if free is not None else ""
    return (f"No space left on {folder}{amount}{available}. Free some space there or write the outputs "
            "to a folder on another disk.")


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NoSpaceError):
            return True
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if _NO_SPACE_TEXT.search(str(current)[:100_000]):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def explain_no_space(folder: Path, needed: int | None = None) -> Iterator[None]:
    """Turn any full-disk error inside the ``with`` block into a :class:`NoSpaceError` naming ``folder`` and ``needed``."""
    try:
        yield
    except Exception as error:
        if not is_no_space(error):
            raise
        full = _full_folder(error) or Path(folder)
        raise NoSpaceError(no_space_message(full, needed, free_bytes(full)), full) from None


def _full_folder(error: BaseException) -> Path | None:
    """The folder the error names, if any: where a NoSpaceError was raised, or an OSError's file's folder."""
    current: BaseException | None = error
    for _ in range(20):
        if current is None:
            return None
        if isinstance(current, NoSpaceError) and current.folder is not None:
            return _outside_scratch(current.folder)
        if isinstance(current, OSError) and current.filename:
            return _outside_scratch(Path(os.fsdecode(current.filename)).parent)
        current = current.__cause__ or current.__context__
    return None


def _outside_scratch(folder: Path) -> Path:
    """The output folder rather than a (by now removed) scratch folder inside it."""
    from .scratch import is_scratch_name

    while is_scratch_name(folder.name) and folder.parent != folder:
        folder = folder.parent
    return folder


def check_written(path: Path, target: Path | None = None) -> None:
    """Fail when ``path``'s disk is practically full after writing it (as the temporary file of ``target``):
    the write most likely failed unreported."""
    free = free_bytes(path.parent)
    if free is not None and free < NEARLY_FULL_BYTES:
        raise NoSpaceError(
            f"No space left on {path.parent} ({megabytes(free)} free after writing {(target or path).name}): the output "
            "is probably incomplete and was not kept. Free some space there or write to another disk.", path.parent
        )


def same_disk(first: Path, second: Path) -> bool:
    """Whether two folders (or their nearest existing parents) are on one file system."""
    try:
        return os.stat(_existing(Path(first))).st_dev == os.stat(_existing(Path(second))).st_dev
    except OSError:
        return False


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder
