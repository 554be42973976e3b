"""Atomic file output: write to a temporary file beside the target, then rename.

A failed or cancelled run therefore never leaves a half-written output, and an existing
file at the target is only replaced once the new one is complete. The temporary name carries
the owning process (see :mod:`core.scratch`), so a later run can remove what a killed one left;
a temporary file written onto a full disk is not renamed into place (see :mod:`core.diskspace`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .diskspace import check_written
from .errors import SatVisionError
from .scratch import owner_tag


def ensure_writable_folder(path: Path) -> None:
    """Create the parent folder of ``path`` if needed and fail clearly if it is not writable."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SatVisionError(
            f"Cannot create the output folder {folder}: {error.strerror}. "
            "Choose an output path in a folder you can write to."
        ) from error
    if not os.access(folder, os.W_OK):
        raise SatVisionError(
            f"The output folder {folder} is not writable. "
            "Choose an output path in a folder you can write to."
        )


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file keeps the target's suffix so that drivers chosen by extension
    (GDAL, OGR) still pick the right format. On any exception, including cancellation,
    the temporary file is removed and the target is left untouched.
    """
    target_path = Path(target)
    ensure_writable_folder(target_path)
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f".{target_path.stem}.", suffix=f".{owner_tag()}.partial{target_path.suffix}", dir=target_path.parent
    )
    os.close(descriptor)
    temporary = Path(temporary_name)
    temporary.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield temporary
        check_written(temporary, target_path)
        os.replace(temporary, target_path)
    finally:
        _remove_with_sidecars(temporary)


def _remove_with_sidecars(path: Path) -> None:
    """Remove ``path`` and files GDAL may have created beside it (``.aux.xml``, ``.ovr``)."""
    for candidate in (path, Path(f"{path}.aux.xml"), Path(f"{path}.ovr"), Path(f"{path}.msk")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
