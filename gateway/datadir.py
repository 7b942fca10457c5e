"""One gateway process per data directory: an OS lock on `data_dir/gateway.lock`, held while serving.

The embedded index engine locks its shard to one process, and two journals writers would interleave turns,
so a second process is stopped at start-up with a message that says which process holds the directory.
The lock goes with the process, however it ends (`kill -9` included).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from gateway.errors import DataDirBusy

LOCK_FILE = "gateway.lock"

_held: dict[Path, IO[str]] = {}  # this process's locks (an OS resource), by directory


def claim(data_dir: Path) -> None:
    """Lock `data_dir` for this process (again: no-op), or raise `DataDirBusy` naming the holder."""
    where = data_dir.resolve()
    if where in _held:
        return
    where.mkdir(parents=True, exist_ok=True)
    handle = (where / LOCK_FILE).open("a+")
    if not _try_lock(handle):
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataDirBusy(
            f"data dir {where} is in use by gateway process {holder}; one gateway process owns a data dir."
            " Stop that one, or give this one another [memory] data_dir."
        )
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _held[where] = handle


def release(data_dir: Path) -> None:
    handle = _held.pop(data_dir.resolve(), None)
    if handle:
        handle.close()


def _try_lock(handle: IO[str]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
