"""Writing files so that a crash never leaves half of one: write a temporary file beside the
target, flush it to disk, rename it into place; an OSError (disk full) is one line, the old file
is kept and the temporary one removed; what a killed process left is cleaned up later.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

__all__ = ["WriteError", "atomic_write", "remove_stale_temporaries"]


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return text or type(e).__name__


class WriteError(OSError):
    """Writing a file failed (disk full, no permission, ...): a one-line message naming the
    file; the previous file under that name is kept and the temporary file removed."""


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync, rename into place.

    A crash at any point leaves either the old file or the new one, never half of one. An
    OSError (disk full, say) removes the temporary file and raises :class:`WriteError`, one
    line naming the file; a killed process can leave the temporary file (``.NAME.XXXXXXXX.tmp``)
    behind, which :func:`remove_stale_temporaries` cleans up.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); give it the mode open() would have: 0666
            # less the umask, or the same mode as the file it replaces
            os.chmod(tmp, _mode_for(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            reason = e.strerror or _reason(e)
            raise WriteError(e.errno, f"{path}: cannot write ({reason}); the previous file, "
                             "if any, is kept") from None
        raise
    return path


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what atomic_write's mkstemp names


def remove_stale_temporaries(directory) -> list[Path]:
    """Remove the temporary files a killed :func:`atomic_write` left in ``directory``.

    Only for a folder this process owns (a run folder under its lock): another writer's
    temporary file would be removed too. Returns the files removed.
    """
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
