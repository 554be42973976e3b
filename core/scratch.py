"""Scratch files beside outputs: names that say which process owns them, and removal of stale ones.

Outputs are written to hidden scratch files and folders beside their target (``.NAME.RANDOM.OWNER.partial.EXT``,
``.satvision-OWNER-RANDOM``) and renamed into place when complete (see :mod:`core.atomic`). A run that
is killed outright (SIGKILL, power loss) cannot remove them, so every job removes the stale ones of
earlier runs in its output folders when it starts. ``OWNER`` is ``p<pid>h<host>``: scratch of a process
of this machine that no longer runs is stale at once; scratch of another machine (a shared network
folder) or with an older name without owner is stale only once it is older than :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

#: Age after which scratch whose owner cannot be checked (another machine, no owner in the name) is stale.
STALE_AFTER_S = 24 * 3600.0

#: Prefix of scratch folders.
FOLDER_PREFIX = ".satvision-"

_OWNER = r"p(?P<pid>\d+)h(?P<host>[0-9a-f]{6})"
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part
_SCRATCH_NAMES = (
    # atomic outputs (core.atomic) and the files GDAL/SQLite put beside them (.aux.xml, -journal, ...)
    re.compile(rf"^\..+\.{_RANDOM}\.(?:{_OWNER}\.)?partial(?:[.-].*)?$"),
    # scratch folders
    re.compile(rf"^{re.escape(FOLDER_PREFIX)}(?:{_OWNER}-)?{_RANDOM}$"),
    # the polygon scratch of core.vectorize (no owner in its name)
    re.compile(rf"^\..+\.{_RANDOM}\.polygons\.gpkg(?:-journal|-wal|-shm)?$"),
)


def host_tag() -> str:
    """Six hex digits naming this machine (scratch of another machine is never judged by its pid)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:6]


def owner_tag() -> str:
    """``p<pid>h<host>``: written into scratch names so that a later run can tell whether the owner still runs."""
    return f"p{os.getpid()}h{host_tag()}"


def is_scratch_name(name: str) -> bool:
    """Whether ``name`` is one SatVision gives to scratch files and folders."""
    return any(pattern.match(name) for pattern in _SCRATCH_NAMES)


@contextlib.contextmanager
def scratch_folder(parent: Path) -> Iterator[Path]:
    """A hidden scratch folder in ``parent`` named with this process's owner tag, removed on exit."""
    with tempfile.TemporaryDirectory(prefix=f"{FOLDER_PREFIX}{owner_tag()}-", dir=parent) as folder:
        yield Path(folder)


def pid_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (True when it cannot be told)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would terminate the process on Windows
        return _windows_pid_running(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def _windows_pid_running(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it runs
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` (a scratch name) was left by a run that is over (see the module)."""
    match = next((found for pattern in _SCRATCH_NAMES if (found := pattern.match(path.name))), None)
    if match is None:
        return False
    pid, host = (match.groupdict().get("pid"), match.groupdict().get("host"))
    if pid is not None and host == host_tag():
        return not pid_running(int(pid))
    try:
        modified = path.lstat().st_mtime
    except OSError:
        return False
    return (time.time() if now is None else now) - modified > STALE_AFTER_S


def remove_stale_scratch(folders: Iterable[Path]) -> list[Path]:
    """Remove the stale scratch files and folders (see :func:`is_stale`) directly in ``folders``; returns them.

    Only names SatVision gives its scratch are considered; what cannot be removed is left alone.
    """
    removed: list[Path] = []
    for folder in dict.fromkeys(Path(folder) for folder in folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if not is_scratch_name(entry.name) or not is_stale(path):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed
