"""All-or-nothing output of several files (e.g. a job's images, footprints and sweep picture).

:func:`staged_outputs` hands out one scratch path beside each target. Only when every file is
written are they moved into place, and if a move fails (a target that is a folder, a permission
change, a vanished folder) the files moved so far are taken back and any file that was at a target
before the run is put back unchanged. Files that existed before are never deleted: they are renamed
aside while the new ones go in and removed only once every new file is in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .atomic import ensure_writable_folder
from .errors import SatVisionError
from .scratch import owner_tag


def _hidden_path_beside(target: Path, kind: str) -> Path:
    """A new, unused hidden path beside ``target`` that keeps its suffix (drivers pick formats by it).

    Named like :func:`core.atomic.atomic_path`'s scratch (with the owning process), so "partial"
    files a killed run leaves are removed by the next run; an "original" (a file that was at the
    target, set aside during the moves) never matches those names and is never removed as scratch.
    """
    descriptor, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".{owner_tag()}.{kind}{target.suffix}",
                                        dir=target.parent)
    os.close(descriptor)
    path = Path(name)
    path.unlink()  # writers such as GDAL want to create the file themselves
    return path


def _remove(path: Path) -> None:
    """Remove a scratch file and files GDAL may have created beside it."""
    for candidate in (path, Path(f"{path}.aux.xml"), Path(f"{path}.ovr"), Path(f"{path}.msk")):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            candidate.unlink()


@contextlib.contextmanager
def staged_outputs(targets: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield one scratch path per target; write each output there. On a normal exit all of them are
    moved onto their targets together; on an exception (or a failed move) no target changes."""
    paths = [Path(target) for target in targets]
    for path in paths:
        ensure_writable_folder(path)
    scratch = [_hidden_path_beside(path, "partial") for path in paths]
    try:
        yield scratch
        _move_all(scratch, paths)
    finally:
        for path in scratch:
            _remove(path)


def _move_all(scratch: Sequence[Path], targets: Sequence[Path]) -> None:
    placed: list[Path] = []
    originals: list[tuple[Path, Path]] = []  # (target, where the file that was there waits)
    target = None
    try:
        for source, target in zip(scratch, targets):
            if target.is_file() or target.is_symlink():
                aside = _hidden_path_beside(target, "original")
                os.replace(target, aside)
                originals.append((target, aside))
            os.replace(source, target)
            placed.append(target)
    except BaseException as error:  # also a cancellation or signal in the middle: undo every move
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        for original, aside in originals:
            os.replace(aside, original)
        if isinstance(error, OSError):
            raise SatVisionError(
                f"Could not write {target}: {error.strerror or error}. No output was written and files that were "
                "there before are unchanged. Choose an output path that is not a folder, in a folder you can write to."
            ) from error
        raise
    for _, aside in originals:
        aside.unlink(missing_ok=True)
