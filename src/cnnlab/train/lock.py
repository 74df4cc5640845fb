"""One writer per run folder: a lock file holding the owner's process id.

``RunLock(folder)`` takes ``folder/.lock`` with an exclusive ``flock`` (POSIX): the kernel drops
the lock when its process ends, however it ends (SIGKILL, power loss), so a lock left by a dead
run is stale by construction and the next run takes it over. A second writer while the first
is alive gets :class:`LockedError`, naming the folder and the owner's PID. The file is never
deleted (deleting it would let two processes lock two different files). Where ``fcntl`` is
missing (Windows) the lock is the file's existence: created with O_EXCL, taken over when the
PID inside is no longer running.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LockedError", "RunLock"]

LOCK_NAME = ".lock"


class LockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(text: str) -> int | None:
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


class RunLock:
    """``with RunLock(folder): ...`` — at most one such block per folder at a time.

    ``stale`` is the PID of a dead owner whose lock was taken over (None when the lock was free).
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd = None
        self.stale = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self._acquire_by_existence()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace")
            os.close(fd)
            raise LockedError(self._busy(_owner(text))) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _owner(os.pread(fd, 64, 0).decode(errors="replace"))
        if previous is not None and previous != os.getpid():
            self.stale = previous  # its process ended without releasing: the kernel did
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def _acquire_by_existence(self) -> RunLock:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _owner(self.path.read_text(errors="replace"))
                if owner is not None and _alive(owner):
                    raise LockedError(self._busy(owner)) from None
                self.stale = owner
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return self
        raise LockedError(self._busy(None))

    def _busy(self, owner) -> str:
        who = f"process {owner}" if owner is not None else "another process"
        return (f"{self.folder} is in use by {who} (lock file {self.path}); one run writes "
                f"to a folder at a time: wait for it to end, or choose another folder")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            os.close(self.fd)
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(self.fd, 0)  # released cleanly: no owner to report as stale
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
