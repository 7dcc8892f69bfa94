"""Reclaiming what killed processes leave in a store: staging directories, spill
directories, catalog temp files.

Every such directory gets an ``.owner`` file when it is made (pid, host, the process's
start time from /proc, so a reused pid is not mistaken for the owner).  A directory is
*stale* when its owner ran on this host and is gone; a directory without an owner file
is stale once it is an hour old (an older thinkforge's, or a crash before the file was
written).  Temp files carry their pid in their name (``.catalog.duckdb.tmp-<pid>``).
Another host's directories are never touched (a store on a shared filesystem).

``reclaim(store)`` runs at the start of every write (``VersionWriter``) and from
``thinkforge gc``; it never raises.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

OWNER = ".owner"
NO_OWNER_GRACE_S = 3600
_PID_SUFFIX = re.compile(r"\.tmp-(\d+)(\.wal)?$")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime in clock ticks


def claim(directory: Path) -> None:
    """Mark ``directory`` as this process's (best effort)."""
    try:
        (Path(directory) / OWNER).write_text(
            f"{os.getpid()} {socket.gethostname()} {_start_time(os.getpid()) or '-'}\n")
    except OSError:
        pass


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return start in (None, "-") or _start_time(pid) in (None, start)


def is_stale(directory: Path, now: float | None = None) -> bool:
    owner = Path(directory) / OWNER
    try:
        pid, host, start = owner.read_text().split()
    except (OSError, ValueError):
        try:
            age = (now or time.time()) - Path(directory).stat().st_mtime
        except OSError:
            return False
        return age > NO_OWNER_GRACE_S
    if host != socket.gethostname():
        return False
    return not _alive(int(pid), start)


def stale_paths(store) -> list[Path]:
    """What a dead process left behind in ``store`` (nothing live, nothing of another host)."""
    found: list[Path] = []
    staging = store.root / ".staging"
    if staging.is_dir():
        found += [p for p in sorted(staging.iterdir()) if p.is_dir() and is_stale(p)]
    runs_root = store.root / "training-runs"
    if runs_root.is_dir():
        found += [p for p in sorted(runs_root.glob(".staging-*")) if p.is_dir() and is_stale(p)]
    for parent in (store.root, store.root / ".cache"):
        if not parent.is_dir():
            continue
        for p in sorted(parent.iterdir()):
            m = _PID_SUFFIX.search(p.name)
            if m and p.is_file() and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1)), None):
                found.append(p)
    return found


def reclaim(store, dry_run: bool = False) -> list[Path]:
    """Remove stale staging/spill directories and temp files; returns what was (or would be)
    removed.  Never raises: cleanup must not fail the write that triggered it."""
    removed = []
    try:
        candidates = stale_paths(store)
    except OSError:
        return []
    for path in candidates:
        if dry_run:
            removed.append(path)
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed
