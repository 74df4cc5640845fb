"""Data-parallel training: every process holds the model, trains on its share of each global
batch, and the gradients are averaged before every update (as Horovod and ChainerMN do).

One step on p processes, rank r holding n_r of the B images of the global batch (sum n_r = B):

    g_r  = (1/n_r) sum_{i in share r} dL_i/dW      (backward on the local mean loss)
    g    = sum_r (n_r / B) g_r = (1/B) sum_{i in batch} dL_i/dW

``g`` is the single-process gradient of the same global batch. It is formed by ONE allreduce of
a flat buffer per step: rank r writes ``n_r * g_r`` for every trainable parameter, then ``n_r``,
then two flags (its loss was not finite; Ctrl-C was pressed), the buffer is summed over the
processes in place, and every rank divides by the summed n. The flags ride along for free, so
that every process stops after the same step. The update itself (clipping, optimizer.step) then
runs identically on every process, which keeps the weights identical without sending them.

L2 regularisation: each rank adds the penalty with lambda / p, so that the averaged gradient
carries lambda/B * W, as one process at batch B would.

Batch norm normalises each rank's share with its own statistics by default (what Horovod and
PyTorch's DistributedDataParallel do); ``SyncBatchNorm`` (syncbn.py) uses the global batch's.
The running statistics are averaged over the ranks at the end of every epoch, so that the
checkpoint's eval-mode model has seen every rank's data.

Only rank 0 writes (ModelCheckpoint, CSVLogger, JSONLogger run there alone) and prints progress.
"""

from __future__ import annotations

import numpy as np

from cnnlab import runtime
from cnnlab.data.loader import DataLoader
from cnnlab.train.callbacks import CSVLogger, JSONLogger, ModelCheckpoint
from cnnlab.train.distributed.sharding import ShardedLoader
from cnnlab.train.fit import NonFiniteLossError, Trainer

__all__ = ["DistributedTrainer", "fit", "broadcast_model"]

_WRITERS = (ModelCheckpoint, CSVLogger, JSONLogger)


def broadcast_model(world, model) -> None:
    """Copy rank 0's parameters and buffers (batch-norm statistics) to every process."""
    for p in model.parameters():
        if not p.data.flags.c_contiguous:
            p.data = np.ascontiguousarray(p.data)
        world.bcast_(p.data, what="the broadcast of the weights")
    for m in model.modules():
        for name in vars(m).get("_buffer_names", ()):
            value = np.ascontiguousarray(getattr(m, name))
            world.bcast_(value, what="the broadcast of the buffers")
            setattr(m, name, value)


class DistributedTrainer(Trainer):
    """A :class:`~cnnlab.train.Trainer` whose step averages gradients over ``world``."""

    _stop_agreed = False  # every process stops after this step (someone pressed Ctrl-C)

    def __init__(self, world, model, optimizer, loss="cross_entropy", metrics=("accuracy",),
                 callbacks=(), seed: int = 0, l2: float = 0.0, clip_norm: float | None = None,
                 verbose: bool = True, extra: dict | None = None):
        if not world.is_root:  # files are written by rank 0 alone
            callbacks = [cb for cb in callbacks if not isinstance(cb, _WRITERS)]
        super().__init__(model, optimizer, loss, metrics, callbacks, seed, l2 / world.size,
                         clip_norm, verbose and world.is_root, extra)
        self.world = world
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._sizes = [p.data.size for p in self._params]
        dtype = np.result_type(np.float32, *(p.dtype for p in self._params))
        # (sum of sizes + 3,): n_r * g_r for every parameter, then n_r, bad loss, stop
        self._flat = np.empty(sum(self._sizes) + 3, dtype)
        self._share = 0  # n_r of the current step
        self._bad = False

    # Ctrl-C: the signal handler of Trainer sets ``_sigint``; here that only says what this
    # process wants, and the loop sees what all of them agreed on in the last allreduce.
    @property
    def _sigint(self) -> bool:
        return self._stop_agreed

    @_sigint.setter
    def _sigint(self, value: bool) -> None:
        self._stop_wanted = bool(value)

    # ---------------------------------------------------------------- the step
    def train_step(self, xb, yb):
        self._share = len(xb)
        try:
            return super().train_step(xb, yb)
        except NonFiniteLossError:
            if not self._bad:  # our own loss: the others wait in the allreduce, tell them
                self._bad = True
                try:
                    self._before_update()
                except NonFiniteLossError:
                    pass
            raise

    def _before_update(self) -> None:
        """Replace every gradient by the average over the processes (one Allreduce)."""
        flat, n = self._flat, self._share
        o = 0
        for p, size in zip(self._params, self._sizes):
            part = flat[o : o + size]  # (size,) view
            if p.grad is None or self._bad:
                part[...] = 0
            else:
                np.multiply(p.grad.reshape(-1), n, out=part)
            o += size
        flat[o:] = (n, float(self._bad), float(getattr(self, "_stop_wanted", False)))
        self.world.allreduce_(flat)
        total, bad, stop = flat[o], flat[o + 1], flat[o + 2]
        if bad and not self._bad:
            self._bad = True
            raise NonFiniteLossError(
                f"fit: the loss became not finite on {int(bad)} of {self.world.size} processes "
                f"at epoch {self.epoch + 1}, step {self.batch_in_epoch + 1} (global step "
                f"{self.step + 1}); training stopped before this update, the last checkpoint "
                "is intact. Try a lower learning rate.")
        flat[:o] /= total
        o = 0
        for p, size in zip(self._params, self._sizes):
            p.grad = flat[o : o + size].reshape(p.shape)  # a view: the next step rewrites it
            o += size
        self._stop_agreed = bool(stop)

    # ---------------------------------------------------------------- the epoch
    def _reseed_rngs(self) -> None:
        """Dropout generators of epoch k on rank r start from (seed, k, r, i): per-rank
        streams, reproducible, and the same after a resume at an epoch boundary."""
        for i, (_, g) in enumerate(self.model.named_rngs()):
            seq = np.random.SeedSequence([self.seed, self.epoch, self.world.rank, i])
            g.bit_generator.state = type(g.bit_generator)(seq).state

    def _epoch(self, train, epochs: int) -> dict:
        if self.batch_in_epoch == 0:
            self._reseed_rngs()
        super()._epoch(train, epochs)
        keys = ["loss", *self.metrics]
        sums = self.partial  # this rank's sums over the epoch: loss * n, metric * n, n
        local = np.array([sums.get(k, 0.0) for k in keys] + [sums.get("n", 0)], np.float64)
        total = self.world.allreduce_(local, what="the epoch's metrics")
        self._average_buffers()
        return {k: float(v / max(total[-1], 1)) for k, v in zip(keys, total[:-1])}

    def _average_buffers(self) -> None:
        """Running batch-norm statistics: the mean over the processes."""
        for m in self.model.modules():
            for name in vars(m).get("_buffer_names", ()):
                value = np.ascontiguousarray(getattr(m, name), dtype=np.float64)
                self.world.allreduce_(value, what="the average of the batch-norm statistics")
                setattr(m, name, (value / self.world.size).astype(getattr(m, name).dtype))

    def resume(self, path) -> None:
        super().resume(path)
        if not self.world.is_root:  # the unfinished epoch's sums were rank 0's alone
            self.partial = {}


def fit(world, model, train, val=None, *, loss="cross_entropy", optimizer=None,
        epochs: int = 1, batch_size: int = 32, metrics=("accuracy",), callbacks=(),
        seed: int = 0, shuffle: bool = True, transform=None, l2: float = 0.0,
        clip_norm: float | None = None, resume=None, verbose: bool = True,
        extra: dict | None = None, eval_sets: dict | None = None):
    """:func:`cnnlab.train.fit` on every process of ``world``: same arguments, same result.

    Each process builds the same model and optimizer and calls this; ``train`` is a Dataset or
    a pair of arrays (every process holds it: each reads only its share of every batch).
    ``batch_size`` is the GLOBAL batch. Rank 0's weights are broadcast first (after ``resume``,
    which every process reads). ``val`` and ``eval_sets`` are evaluated whole on every process,
    as in one process. Returns the History (the same on every process: training
    metrics are averaged over all the images of the epoch).
    """
    if isinstance(train, DataLoader):
        raise TypeError("distributed fit: train must be a Dataset or a pair (x, y) of arrays, "
                        "not a DataLoader (each process makes its own share of every batch)")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1; received {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be an int >= 1; received {batch_size!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"fit: clip_norm must be > 0 (or None for no clipping); "
                         f"received {clip_norm!r}")
    if isinstance(train, (tuple, list)) and len(train) == 2:
        train = (np.asarray(train[0]), np.asarray(train[1]))
    loader = ShardedLoader(train, batch_size, world.rank, world.size, shuffle=shuffle,
                           seed=seed, transform=transform)
    trainer = DistributedTrainer(world, model, optimizer, loss, metrics, callbacks, seed, l2,
                                 clip_norm, verbose, extra)
    if resume is not None:
        trainer.resume(resume)
    broadcast_model(world, model)

    def whole(data):  # evaluated in full on every process
        if data is None or isinstance(data, DataLoader):
            return data
        if isinstance(data, (tuple, list)) and len(data) == 2:
            data = (np.asarray(data[0]), np.asarray(data[1]))
        return DataLoader(data, batch_size, shuffle=False, seed=seed)

    extra_sets = {name: whole(d) for name, d in (eval_sets or {}).items()}
    with runtime.configure():  # this process's threads, BLAS and allocator: given back
        return trainer.run(loader, whole(val), epochs, extra_sets)
