"""The ``cnnlab`` command line (``cnnlab --help``)."""

from cnnlab.cli.main import main

__all__ = ["main"]
