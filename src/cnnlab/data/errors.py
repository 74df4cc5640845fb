"""The one error type of the data package: a data file that is missing, corrupt or wrong."""

from __future__ import annotations

__all__ = ["DataError", "DataFileNotFoundError"]


class DataError(ValueError):
    """A data file (or a download) is missing, corrupt, truncated or not what was expected.

    The message names the file (or URL) and what is wrong with it, in one line, so a command
    line can print it as it is.
    """


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file that should be there is not (catch it as DataError or FileNotFoundError)."""
