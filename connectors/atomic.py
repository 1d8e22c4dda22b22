"""Atomic file writes: a reader sees the old file or the complete new one, never half of it.

The temporary file is written in a scratch folder on the same filesystem (``SWV_VAR_DIR/tmp`` by
default; the lake passes its own ``<lake>/tmp``), flushed, fsynced and then renamed over the target
(rename is atomic within a filesystem). Never a hidden file beside the outputs: a process killed
while writing leaves its temporary file in the scratch folder only, named after the host and the
process, and the first atomic write of any later process removes the leftovers of processes of this
host that are gone. Files get the private mode of ``connectors.private``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from connectors import private
from settings.paths import var_layout

_SWEPT: set[Path] = set()


def scratch_folder() -> Path:
    """The default scratch folder: ``SWV_VAR_DIR/tmp``, read at call time."""
    return var_layout().tmp


def _process_prefix(pid: int | None = None) -> str:
    return f"{socket.gethostname()}-{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep(scratch: Path) -> list[Path]:
    """Remove the temporary files in ``scratch`` of this host's processes that no longer run."""
    host = f"{socket.gethostname()}-"
    removed = []
    for path in scratch.glob(f"{host}*.tmp") if scratch.is_dir() else []:
        pid = path.name[len(host):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: Path, *, scratch: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically."""
    target = Path(target)
    scratch = Path(scratch) if scratch is not None else scratch_folder()
    private.make_folders(target.parent)
    private.make_folders(scratch)
    if scratch.stat().st_dev != target.parent.stat().st_dev:
        # A rename cannot cross filesystems: a folder mounted apart from SWV_VAR_DIR (a deployment to
        # avoid, docs/deploy.md) has its temporary files beside the target, swept the same way.
        scratch = target.parent
    if scratch not in _SWEPT:
        sweep(scratch)
        _SWEPT.add(scratch)
    tmp = scratch / f"{_process_prefix()}{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        private.make_private(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes, *, scratch: Path | None = None) -> None:
    with atomic_path(target, scratch=scratch) as tmp:
        tmp.write_bytes(data)
