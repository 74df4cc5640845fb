"""``python -m cnnlab ...`` runs the ``cnnlab`` command (see :mod:`cnnlab.cli.main`)."""

from cnnlab.cli.main import entry

if __name__ == "__main__":
    entry()
