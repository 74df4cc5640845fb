"""mpiexec for the MPI tests: missing -> skip, or fail under CNNLAB_REQUIRE_ORACLES=1."""

from __future__ import annotations

import pytest

from tests.train.distributed.helpers import require_mpiexec


@pytest.fixture(scope="session")
def mpiexec():
    return require_mpiexec()
