"""Data-parallel training on MPI (mpi4py, the ``mpi`` extra): ``mpiexec -n N cnnlab train``.

Every process holds the model and takes its share of each global batch (sharding.py); the
gradients are averaged by one Allreduce of a flat float32 buffer before every update
(trainer.py); batch norm uses per-process statistics unless made synchronised (syncbn.py);
a start-up check makes sure that every process trains the same thing (startup.py); every
collective has a deadline (world.py).

From Python, run the same script on every process::

    # mpiexec -n 2 python train.py
    from cnnlab.train import distributed
    world = distributed.init_world()          # None when not started by mpiexec
    model = ...; opt = ...                    # the same on every process (same seed)
    distributed.fit(world, model, (x, y), optimizer=opt, batch_size=64, epochs=3)

Importing this package does not import mpi4py; ``init_world`` does.
"""

from cnnlab.train.distributed.sharding import ShardedLoader, share_bounds
from cnnlab.train.distributed.startup import agree, data_digest, model_digest
from cnnlab.train.distributed.syncbn import (
    SyncBatchNorm1D,
    SyncBatchNorm2D,
    convert_sync_batchnorm,
)
from cnnlab.train.distributed.trainer import DistributedTrainer, broadcast_model, fit
from cnnlab.train.distributed.world import (
    MPI_EXTRA,
    DistributedError,
    World,
    import_mpi,
    init_world,
    launched_rank,
    launched_size,
)

__all__ = [
    "MPI_EXTRA",
    "DistributedError",
    "DistributedTrainer",
    "ShardedLoader",
    "SyncBatchNorm1D",
    "SyncBatchNorm2D",
    "World",
    "agree",
    "broadcast_model",
    "convert_sync_batchnorm",
    "data_digest",
    "fit",
    "import_mpi",
    "init_world",
    "launched_rank",
    "launched_size",
    "model_digest",
    "share_bounds",
]
