"""Checks of a job's output paths before any work: nothing an output writes may destroy an input.

Every job that writes files calls :func:`check_outputs` first. It refuses, with a message naming
the parameters involved:

* an output that is the same file as an input (GDAL's "source and destination datasets must be
  different"): the same resolved path, the same existing file under another name (hard or symbolic
  link, ``..``), or a name differing only in case on a case-insensitive file system;
* two outputs that are the same file (one would silently replace the other);
* a file output that is an existing folder, and a folder output that is an existing file;
* an extension the writer does not honour (a raster output is a GeoTIFF: ``.tif``/``.tiff``;
  vector outputs follow :data:`core.vector_io.OUTPUT_DRIVERS`);
* a name that SatVision gives its scratch files (it would be removed as stale by a later run).

Then it creates the output folders (failing clearly when it cannot).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

from .atomic import ensure_writable_folder
from .errors import SatVisionError
from .scratch import is_scratch_name

#: Extensions of raster outputs: every raster SatVision writes is a GeoTIFF.
RASTER_EXTENSIONS = (".tif", ".tiff")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Target:
    """An output path and what is written there: ``raster``, ``vector``, ``file`` (given extensions) or ``folder``."""

    path: Path
    kind: str = "file"
    extensions: tuple[str, ...] = ()  # lower case, with the dot; empty: any


def raster(path: PathLike | None) -> Target | None:
    return Target(Path(path), "raster", RASTER_EXTENSIONS) if path else None


def vector(path: PathLike | None) -> Target | None:
    return Target(Path(path), "vector") if path else None


def file(path: PathLike | None, *extensions: str) -> Target | None:
    return Target(Path(path), "file", tuple(extension.lower() for extension in extensions)) if path else None


def folder(path: PathLike | None) -> Target | None:
    return Target(Path(path), "folder") if path else None


def check_outputs(
    *,
    inputs: Mapping[str, PathLike | None] | None = None,
    outputs: Mapping[str, Target | PathLike | None],
) -> list[Path]:
    """Refuse unsafe outputs (see the module) and create their folders; returns the folders written in.

    ``inputs`` and ``outputs`` map parameter names (used in the messages) to paths; ``None`` entries
    (optional outputs not asked for, inputs that are not files) are skipped.
    """
    targets = {label: value if isinstance(value, Target) else Target(Path(value))
               for label, value in outputs.items() if value}
    sources = {label: Path(_file_part(value)) for label, value in (inputs or {}).items() if value}
    for label, target in targets.items():
        _check_kind(label, target)
        if is_scratch_name(target.path.name):
            raise SatVisionError(
                f"{label}: the name {target.path.name} is one SatVision gives its temporary files, which later runs "
                "remove. Choose another name."
            )
        for source_label, source in sources.items():
            if same_file(target.path, source):
                raise SatVisionError(
                    f"The output {label} ({target.path}) is the input {source_label}: writing it would destroy the "
                    f"input. Source and destination must be different: choose another file for {label}."
                )
    labels = list(targets)
    for index, label in enumerate(labels):
        for other in labels[index + 1:]:
            if same_file(targets[label].path, targets[other].path):
                raise SatVisionError(
                    f"The outputs {label} and {other} are the same file ({targets[label].path}): one would replace "
                    "the other. Choose a different file for each output."
                )
    folders: list[Path] = []
    for target in targets.values():
        inside = target.path / "_" if target.kind == "folder" else target.path
        ensure_writable_folder(inside)
        folders.append(inside.parent)
    return list(dict.fromkeys(folders))


def _check_kind(label: str, target: Target) -> None:
    path = target.path
    if target.kind == "folder":
        if path.exists() and not path.is_dir():
            raise SatVisionError(f"{label} ({path}) is a file, not a folder. Choose a folder (new or existing).")
        return
    if path.is_dir():
        example = path / f"output{target.extensions[0] if target.extensions else '.gpkg' if target.kind == 'vector' else ''}"
        raise SatVisionError(
            f"{label} ({path}) is an existing folder, not a file. Give a file name in it, e.g. {example}."
        )
    if target.kind == "vector":
        from .vector_io import output_driver

        try:
            output_driver(path, label)
        except SatVisionError as error:
            raise SatVisionError(str(error) if label in str(error) else f"{label}: {error}") from None
        return
    suffix = path.suffix.lower()
    if target.extensions and suffix not in target.extensions:
        what = "a GeoTIFF" if target.kind == "raster" else "a " + target.extensions[0].lstrip(".").upper() + " file"
        raise SatVisionError(
            f"Cannot write {label} to {path.name}: it is written as {what}, which the extension "
            f"'{suffix or '(none)'}' does not name. Use {' or '.join(target.extensions)}."
        )


def _file_part(value: PathLike) -> str:
    """The file of a data source string: QGIS appends ``|layername=...`` to some, and GDAL names
    subdatasets ``DRIVER:file:name`` (``GPKG:/data/s2.gpkg:scene``, ``NETCDF:"/data/s2.nc":B2``)."""
    text = os.fspath(value).split("|", 1)[0]
    if os.path.exists(text):
        return text
    match = re.match(r'^[A-Za-z][A-Za-z0-9_]+:"?(?P<rest>.+?)"?$', text)
    if match:
        rest = match.group("rest")
        for candidate in (rest, rest.rsplit(":", 1)[0].rstrip('"')):
            if os.path.exists(candidate):
                return candidate
    return text


def same_file(first: Path, second: Path) -> bool:
    """Whether the two paths name one file (existing or not), see the module."""
    try:
        if os.path.samefile(first, second):  # both exist: same device and inode
            return True
    except OSError:
        pass
    one, two = _absolute(first), _absolute(second)
    if one == two or os.path.normcase(str(one)) == os.path.normcase(str(two)):
        return True
    return (one.parent == two.parent and one.name.lower() == two.name.lower()
            and _case_insensitive(one.parent))


def _absolute(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _case_insensitive(folder: Path) -> bool:
    """Whether names in ``folder`` ignore case: the folder (or a parent) is found under its swapped-case name."""
    for candidate in (folder, *folder.parents):
        if candidate.name.swapcase() != candidate.name:
            swapped = candidate.with_name(candidate.name.swapcase())
            try:
                return os.path.samefile(candidate, swapped)
            except OSError:
                return False
    return False
