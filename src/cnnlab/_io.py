"""Opening the files cnnlab reads: regular files only, so that a FIFO never hangs a read and a
device (``/dev/zero``) is never read until memory runs out.

The file is opened without blocking (``O_NONBLOCK``: opening a FIFO with no writer would wait
forever) and its type is checked on the open descriptor, so it cannot be swapped in between.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotARegularFileError", "open_regular"]


class NotARegularFileError(OSError):
    """The path is a FIFO, a device, a socket or a directory, not a regular file."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "of another kind"


def open_regular(path):
    """``open(path, "rb")`` for a regular file; NotARegularFileError for anything else
    (FileNotFoundError and other OSErrors pass through). Returns (file, size in bytes)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(os.fspath(path), flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(f"{os.fspath(path)}: {_kind(info.st_mode)}, "
                                       "not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, info.st_size
