"""Least privilege on disk: files with personal data 0600, their folders 0700 (docs/runbook.md).

On a shared server the operators may read along through one group: ``SWV_FILE_GROUP`` (a group
name or number) makes files 0640 and folders 2750 in that group (the setgid bit lets every file
created below inherit the group). Read at call time, so a service picks up a change at restart.

``restrict_process`` sets the process's umask to match, so that files written by libraries (SQLite
for the warehouse, Dagster for the run history) are private too; ``make_private`` and
``make_folders`` set the mode explicitly for what the pipeline writes itself.
"""

from __future__ import annotations

import functools
import grp
import os
from pathlib import Path

GROUP_ENV = "SWV_FILE_GROUP"


@functools.cache
def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"{GROUP_ENV}={group!r} is not a group on this machine") from None


def group() -> int | None:
    """The shared group's id, or None for owner-only access."""
    name = os.environ.get(GROUP_ENV, "").strip()
    return _gid(name) if name else None


def file_mode() -> int:
    return 0o640 if group() is not None else 0o600


def folder_mode() -> int:
    return 0o2750 if group() is not None else 0o700


def restrict_process() -> None:
    """The umask for this process: new files 0600 and folders 0700, or 0640/0750 with a shared group."""
    os.umask(0o027 if group() is not None else 0o077)


def _apply(path: Path, mode: int) -> None:
    gid = group()
    if gid is not None and path.stat().st_gid != gid:
        os.chown(path, -1, gid)
    os.chmod(path, mode)


def make_private(path: Path) -> None:
    """Give a file the private mode (and the shared group)."""
    _apply(Path(path), file_mode())


def make_folders(folder: Path) -> None:
    """``mkdir -p`` where every folder created gets the private mode (and the shared group)."""
    folder = Path(folder)
    if folder.is_dir():
        return
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:  # another process made it meanwhile
            continue
        _apply(created, folder_mode())


def secure_tree(root: Path) -> None:
    """Tighten a runtime folder and everything in it (an installation from before these modes)."""
    root = Path(root)
    if not root.exists():
        return
    _apply(root, folder_mode())
    for folder, subfolders, files in os.walk(root):
        for name in subfolders:
            _apply(Path(folder, name), folder_mode())
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                _apply(path, file_mode())
