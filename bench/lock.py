"""Run-directory lock: at most one ``bench run`` writes into a run directory at a time.

The lock is an advisory ``flock`` on ``<run dir>/.lock``. The kernel drops it when the
holding process exits for any reason (SIGKILL and the OOM killer included), so a
killed run never leaves a lock that blocks the next one. The file itself stays (deleting
a lock file races with a process that has just opened it); while held it names the
holder (pid, host, command, start time) so that a refused run can say who holds it.

On filesystems without ``flock`` (e.g. Lustre mounted without ``-o flock``) the lock
falls back to that pid/host record: a holder on this host whose pid is no longer alive is
stale and taken over; a holder on another host cannot be checked and is refused with the
path to delete. The fallback is not atomic against two runs starting in the same instant.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from nskernel.errors import UsageError

LOCK_NAME = ".lock"
# errno values meaning "this filesystem does not support flock", not "someone holds it".
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RunDirLocked(UsageError):
    """Another live run holds the run directory (exit code 2: nothing was written)."""


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv])}


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 1 << 16, 0)
        holder = json.loads(raw) if raw.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # being written, or garbage: treated as "no holder information"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another run (no details recorded yet)"
    return (f"another run (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}: {holder.get('command', '?')})")


class RunLock:
    """Context manager holding the lock of ``run_dir`` (created if missing).

    Raises `RunDirLocked` if another live run holds it and `UsageError` if the directory
    cannot be created or written; both before anything else is written there.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"cannot write to the run directory {self.run_dir}: {e.strerror or e}") from None
        try:
            self._lock(fd)
            self._check_writable()
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_me()).encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            raise self._refusal(_read_holder(fd)) from None
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                raise UsageError(f"cannot lock the run directory {self.run_dir}: {e.strerror or e}") from None
        # No flock here: judge the recorded holder instead.
        holder = _read_holder(fd)
        if not holder.get("pid"):
            return
        if holder.get("host") != socket.gethostname():
            raise self._refusal(holder, hint=f"if that run is dead, delete {self.path}")
        if holder["pid"] == os.getpid() or pid_alive(int(holder["pid"])):
            raise self._refusal(holder)
        # A dead pid on this host: a stale lock left by a killed run; take it over.

    def _check_writable(self) -> None:
        """The lock file may be writable in a directory that is not (it existed already)."""
        for folder in (self.run_dir, self.run_dir / "records"):
            if not folder.is_dir():
                continue
            probe = folder / f".probe.{os.getpid()}.tmp"
            try:
                probe.touch()
                probe.unlink()
            except OSError as e:
                raise UsageError(f"cannot write to the run directory {folder}: {e.strerror or e}") from None

    def _refusal(self, holder: dict[str, Any], hint: str = "") -> RunDirLocked:
        return RunDirLocked(f"run directory {self.run_dir} is in use by {_describe(holder)}; wait for it to "
                            f"finish or choose another --out" + (f" ({hint})" if hint else ""))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no holder: also what the no-flock fallback reads
        except OSError:
            pass
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
