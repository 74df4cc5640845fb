"""Mini-batch training: ``fit``, ``evaluate`` and ``predict``.

One epoch, as the course writes it: shuffle, cut into mini-batches; for each batch forward
propagate, compute the cost, backward propagate, update the parameters. Then evaluate on the
validation set and let the callbacks act (stop early, save checkpoints, log, change lr).

What it guarantees:
* reproducible: the batch order and augmentation of epoch k come from (seed, k), dropout masks
  from the model's own generators, whose states go into every checkpoint — so a run resumed from
  a checkpoint ends with weights bitwise identical to one that was never interrupted;
* nothing lost: a NaN or infinite loss stops training (NonFiniteLossError names the epoch and
  step) before the bad update, so the last checkpoint on disk stays good; Ctrl-C saves a
  checkpoint of the exact position (epoch and batch) and returns cleanly.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import numpy as np

from cnnlab import functional as F
from cnnlab import metrics as metrics_mod
from cnnlab import runtime
from cnnlab.data.loader import DataLoader
from cnnlab.tensor import Tensor, no_grad
from cnnlab.train.callbacks import Callback, ModelCheckpoint
from cnnlab.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from cnnlab.train.progress import Progress

__all__ = ["fit", "evaluate", "predict", "History", "Trainer", "NonFiniteLossError",
           "NonFiniteStateError"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the update."""


class NonFiniteStateError(NonFiniteLossError):
    """A gradient, a weight or the optimizer's state became NaN or infinite (an overflow: with
    a learning rate far too high, Adam's second moments reach inf while the loss still looks
    finite); training stopped, and no checkpoint is written from that state."""


class History:
    """The per-epoch metrics of a run: ``history.history["loss"]`` is a list, one per epoch."""

    def __init__(self, history: dict | None = None):
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.interrupted = False
        self.stopped_early = False

    def append(self, logs: dict) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    @property
    def epochs(self) -> int:
        return len(next(iter(self.history.values()), []))

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, last={last})"


_LOSSES = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "binary_cross_entropy": F.binary_cross_entropy_with_logits,
}


def _loss_fn(loss):
    if callable(loss):
        return loss
    if loss not in _LOSSES:
        raise ValueError(f"fit: unknown loss {loss!r}; expected one of {sorted(_LOSSES)} "
                         "or a callable (logits, target) -> Tensor")
    return _LOSSES[loss]


# the metrics fit can track, computed by cnnlab.metrics (one place for how cnnlab counts)
_METRICS = {"accuracy": metrics_mod.output_accuracy, "binary_accuracy": metrics_mod.binary_accuracy}


def _loader(data, batch_size, shuffle, seed, transform=None, name="train"):
    if data is None or isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = (np.asarray(data[0]), np.asarray(data[1]))
    return DataLoader(data, batch_size, shuffle=shuffle, seed=seed, transform=transform)


class Trainer:
    """Holds what a training run needs; ``fit`` builds one and runs it."""

    def __init__(self, model, optimizer, loss="cross_entropy", metrics=("accuracy",),
                 callbacks=(), seed: int = 0, l2: float = 0.0, clip_norm: float | None = None,
                 verbose: bool = True, extra: dict | None = None):
        if optimizer is None:
            raise ValueError("fit: an optimizer is required, e.g. optim.Adam(model.parameters())")
        self.model, self.optimizer = model, optimizer
        self.loss_fn = _loss_fn(loss)
        unknown = [m for m in metrics if m not in _METRICS]
        if unknown:
            raise ValueError(f"fit: unknown metric(s) {unknown}; available: {sorted(_METRICS)}")
        self.metrics = list(metrics)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be Callback instances; received {cb!r}")
        self.seed, self.l2, self.clip_norm, self.verbose = seed, l2, clip_norm, verbose
        self.extra = extra or {}
        self.history = History()
        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches done in the current epoch (non-zero after Ctrl-C)
        self.step = 0  # optimizer steps in total
        self.partial = {}  # running sums of the unfinished epoch
        self.stop = False
        self._sigint = False  # Ctrl-C pressed: stop after the current batch
        self._updating = False  # between optimizer.step() and the batch's bookkeeping

    # ---------------------------------------------------------------- checkpoints
    def save(self, path) -> Path:
        meta = {
            "history": self.history.history,
            "batch_in_epoch": self.batch_in_epoch,
            "partial": self.partial,
            "callbacks": [{"type": type(cb).__name__, "state": cb.state()}
                          for cb in self.callbacks],
            "seed": self.seed,
        }
        arrays = {f"callbacks/{i}/{k}": v for i, cb in enumerate(self.callbacks)
                  for k, v in cb.arrays().items()}
        return save_checkpoint(path, self.model, self.optimizer, epoch=self.epoch,
                               step=self.step, history=self.history.history,
                               extra={**self.extra, "trainer": meta}, extra_arrays=arrays)

    def resume(self, path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "last.npz"
        ckpt = load_checkpoint(path, model=self.model)
        meta = restore(ckpt, self.model, self.optimizer)
        state = meta.get("extra", {}).get("trainer")
        if state is None:
            raise CheckpointError(f"{path}: holds no training state to resume from")
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.partial = state["partial"]
        self.history = History(state["history"])
        # the k-th callback of a type gets the state of the k-th one of that type that was
        # saved (as Lightning keys callback states by class): a callback added on resume starts
        # fresh, a saved one no longer passed is dropped
        saved = {}
        for i, s in enumerate(state["callbacks"]):
            saved.setdefault(s["type"], []).append((i, s["state"]))
        for cb in self.callbacks:
            queue = saved.get(type(cb).__name__)
            if not queue:
                continue
            i, s = queue.pop(0)
            prefix = f"callbacks/{i}/"
            try:
                cb.load_state(s)
                cb.load_arrays({k[len(prefix):]: v for k, v in ckpt["extra"].items()
                                if k.startswith(prefix)})
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: metadata: the state of callback {i} "
                                      f"({type(cb).__name__}) does not fit it ({e!r})") from None

    # ---------------------------------------------------------------- one batch
    def _side_state(self) -> tuple:
        """What a forward pass changes besides the graph: generator states and buffers."""
        rngs = {name: g.bit_generator.state for name, g in self.model.named_rngs()}
        buffers = [(m, name, getattr(m, name).copy()) for m in self.model.modules()
                   for name in vars(m).get("_buffer_names", ())]
        return rngs, buffers

    def _roll_back(self, side: tuple) -> None:
        rngs, buffers = side
        for name, g in self.model.named_rngs():
            g.bit_generator.state = rngs[name]
        for m, name, value in buffers:
            setattr(m, name, value)

    def _before_update(self) -> None:
        """Hook between backward and the update (clipping, then ``optimizer.step()``): the
        data-parallel trainer (``cnnlab.train.distributed``) averages the gradients of its
        processes here. One process has nothing to do."""

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, np.ndarray]:
        """One forward/backward/update. When it stops before the update (a non-finite loss,
        Ctrl-C), the dropout generators and batch-norm statistics are put back as they were,
        so the model is exactly as after the previous step."""
        side = self._side_state()
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a bad loss is caught below
                logits = self.model(Tensor(xb))
                loss = self.loss_fn(logits, yb)
                if self.l2:
                    from cnnlab.optim import l2_penalty

                    loss = loss + l2_penalty(self.model.parameters(), self.l2, len(xb))
            value = float(loss.data)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"fit: the loss became {value} at epoch {self.epoch + 1}, step "
                    f"{self.batch_in_epoch + 1} (global step {self.step + 1}); training stopped "
                    "before this update, the last checkpoint is intact. Try a lower learning "
                    "rate."
                )
            self.optimizer.zero_grad()
            loss.backward()
            self._before_update()
            if self.clip_norm:
                from cnnlab.optim import clip_grad_norm

                clip_grad_norm(self.model.parameters(), self.clip_norm)
            self._check_finite("gradient", ((n, p.grad) for n, p in self._named_params()),
                               "before this update")
        except BaseException:
            self._roll_back(side)
            raise
        self._updating = True  # until _epoch has counted this batch
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below
            self.optimizer.step()
        self.step += 1
        self._check_finite("weight", ((n, p.data) for n, p in self._named_params()),
                           "in this update")
        self._check_finite("optimizer state", self._optimizer_state(), "in this update")
        return value, logits.data

    # ---------------------------------------------------------------- the numerical guard
    def _named_params(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def _optimizer_state(self):
        """(name, array) for every array of the optimizer's per-parameter state."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        for p, entries in getattr(self.optimizer, "state", {}).items():
            for key, value in entries.items():
                if isinstance(value, np.ndarray):
                    yield f"{key} of {names.get(id(p), '?')}", value

    def _check_finite(self, what: str, arrays, when: str) -> None:
        """Stop (NonFiniteStateError) at the first array holding NaN or inf: checkpoints are
        written only from finite state, so the last one on disk stays good."""
        for name, array in arrays:
            if array is not None and not np.isfinite(array).all():
                raise NonFiniteStateError(
                    f"fit: the {what} {name} became NaN or infinite {when}, at epoch "
                    f"{self.epoch + 1}, step {self.batch_in_epoch + 1} (global step "
                    f"{self.step + (when == 'before this update')}); training stopped, the "
                    "last checkpoint is intact. Try a lower learning rate."
                )

    # ---------------------------------------------------------------- the loop
    def run(self, train: DataLoader, val=None, epochs: int = 1, eval_sets=None) -> History:
        for cb in self.callbacks:
            cb.on_train_begin(self)
        previous = self._catch_sigint()
        self._updating = False
        try:
            while self.epoch < epochs and not self.stop:
                if self._sigint:  # Ctrl-C during validation or a callback
                    raise KeyboardInterrupt
                logs = self._epoch(train, epochs)
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in
                                 evaluate(self.model, val, loss=self.loss_fn,
                                          metrics=self.metrics).items()})
                for name, data in (eval_sets or {}).items():  # e.g. the training-dev set
                    logs.update({f"{name}_{k}": v for k, v in
                                 evaluate(self.model, data, loss=self.loss_fn,
                                          metrics=self.metrics).items()})
                self.history.append(logs)
                # one statement, so an interrupt never sees the new epoch with the old position
                self.epoch, self.batch_in_epoch, self.partial = self.epoch + 1, 0, {}
                # checkpoints last, so that what they save holds the other callbacks' state
                # after this epoch (EarlyStopping's best, say)
                for cb in sorted(self.callbacks, key=lambda c: isinstance(c, ModelCheckpoint)):
                    cb.on_epoch_end(self.epoch - 1, logs)
                if self.verbose and (val is not None or eval_sets):
                    shown = ("val_", *(f"{name}_" for name in eval_sets or ()))
                    print("  " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()
                                          if k.startswith(shown)))
        except KeyboardInterrupt:
            self.history.interrupted = True
            path = self._interrupt_path()
            if self._updating:  # a second Ctrl-C inside an update: the state is half-updated
                print("\ninterrupted during a parameter update: no checkpoint written "
                      "(the last one on disk is intact)")
            elif path is not None:
                self.save(path)
                print(f"\ninterrupted: checkpoint saved to {path} "
                      f"(epoch {self.epoch + 1}, batch {self.batch_in_epoch})")
            return self.history
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self.history.stopped_early = self.stop
        for cb in self.callbacks:
            cb.on_train_end()
        return self.history

    def _catch_sigint(self):
        """Make the first Ctrl-C stop training after the current batch (at a clean position);
        a second one interrupts at once. Returns the handler to put back (None off the main
        thread, where signals cannot be caught)."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            return None  # the user installed their own handler: leave it alone

        def on_sigint(signum, frame):
            self._sigint = True
            signal.signal(signal.SIGINT, previous)

        self._sigint = False
        signal.signal(signal.SIGINT, on_sigint)
        return previous

    def _interrupt_path(self):
        for cb in self.callbacks:
            if isinstance(cb, ModelCheckpoint):
                return cb.last_path
        return None

    def _epoch(self, train: DataLoader, epochs: int) -> dict:
        self.model.train()
        for cb in self.callbacks:
            cb.on_epoch_begin(self.epoch)
        train.set_epoch(self.epoch)
        sums = {"loss": 0.0, "n": 0, **{m: 0.0 for m in self.metrics}}
        sums.update(self.partial)
        bar = Progress(len(train), self.epoch, epochs, enabled=self.verbose)
        skip = self.batch_in_epoch
        for i, (xb, yb) in enumerate(train):
            if i < skip:
                bar.update(0, {})
                continue
            value, logits = self.train_step(xb, yb)
            n = len(xb)
            sums["loss"] += value * n
            sums["n"] += n
            for m in self.metrics:
                sums[m] += _METRICS[m](logits, yb) * n
            self.batch_in_epoch = i + 1
            self.partial = dict(sums)
            self._updating = False
            bar.update(n, {k: sums[k] / sums["n"] for k in ["loss", *self.metrics]})
            if self._sigint:
                raise KeyboardInterrupt
        logs = {k: sums[k] / max(sums["n"], 1) for k in ["loss", *self.metrics]}
        bar.close(logs)
        return logs


def fit(model, train, val=None, *, loss="cross_entropy", optimizer=None, epochs: int = 1,
        batch_size: int = 32, metrics=("accuracy",), callbacks=(), seed: int = 0,
        shuffle: bool = True, transform=None, l2: float = 0.0, clip_norm: float | None = None,
        resume=None, verbose: bool = True, extra: dict | None = None,
        eval_sets: dict | None = None, validation_data=None) -> History:
    """Train ``model`` with mini-batch gradient descent; returns the :class:`History`.

    ``fit(model, train_ds, val_ds, ...)``, or with arrays as in Keras:
    ``fit(model, x, y, validation_data=(x_val, y_val), ...)``.

    Args:
        model: an ``nn.Module`` producing logits.
        train: a Dataset, a DataLoader, a pair of arrays (x, y), or the inputs x (an array)
            when the labels y follow as the next argument.
        val: validation data of the same kinds (evaluated after each epoch as ``val_*``), or
            the labels y when ``train`` is an array of inputs.
        validation_data: validation data when ``train`` and ``val`` are x and y.
        loss: 'cross_entropy' (integer labels or probabilities), 'mse',
            'binary_cross_entropy', or a callable (logits, target) -> Tensor.
        optimizer: an optimizer from :mod:`cnnlab.optim` over ``model.parameters()``.
        epochs: total number of epochs (a resumed run continues up to it).
        batch_size, shuffle, transform: how batches are made (ignored for a DataLoader).
        metrics: names of metrics to track ('accuracy').
        callbacks: EarlyStopping, ModelCheckpoint, LRScheduler, CSVLogger, JSONLogger, ...
        seed: batch order and augmentation of epoch k come from (seed, k).
        l2: lambda of L2 regularization, lambda/(2m) * sum ||W||^2 over the weights.
        clip_norm: clip the gradients' global norm to this value.
        resume: a checkpoint file, or a directory holding ``last.npz``, to continue from.
        eval_sets: more data evaluated after each epoch like ``val``, ``{name: data}``, logged
            as ``{name}_loss``, ``{name}_accuracy`` (e.g. ``{"train_dev": ...}``, the course's
            training-dev set).

    The speed runtime (:mod:`cnnlab.runtime`: ``cnnlab.get_num_threads()`` threads, BLAS held
    to one thread, freed memory kept) is held while training and given back afterwards.
    """
    if isinstance(train, (np.ndarray, Tensor)):  # fit(model, x, y): Keras's order
        if not isinstance(val, (np.ndarray, Tensor, list)):
            raise ValueError("fit: train is an array of inputs, so the labels must come next: "
                             f"fit(model, x, y); received {type(val).__name__} after it")
        x = train.data if isinstance(train, Tensor) else train
        train, val = (x, np.asarray(val.data if isinstance(val, Tensor) else val)), None
    if validation_data is not None:
        if val is not None:
            raise ValueError("fit: give the validation data once, as val or validation_data")
        val = validation_data
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1; received {epochs!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"fit: clip_norm must be > 0 (or None for no clipping); "
                         f"received {clip_norm!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be an int >= 1; received {batch_size!r}")
    trainer = Trainer(model, optimizer, loss, metrics, callbacks, seed, l2, clip_norm, verbose,
                      extra)
    if resume is not None:
        trainer.resume(resume)
    train_loader = _loader(train, batch_size, shuffle, seed, transform)
    val_loader = _loader(val, batch_size, False, seed)
    bad = [n for n in (eval_sets or {}) if not (isinstance(n, str) and n.isidentifier())
           or n == "val"]
    if bad:  # the name prefixes the logged metrics: val_* is the validation set's
        raise ValueError(f"fit: eval_sets names must be identifiers other than 'val'; "
                         f"received {bad}")
    extra_loaders = {name: _loader(d, batch_size, False, seed)
                     for name, d in (eval_sets or {}).items()}
    with runtime.configure():  # cnnlab's threads, BLAS and allocator: given back
        return trainer.run(train_loader, val_loader, epochs, extra_loaders)


def _batches(data, batch_size: int):
    if isinstance(data, DataLoader):
        yield from data
        return
    loader = _loader(data, batch_size, False, 0)
    yield from loader


def evaluate(model, data, *, loss="cross_entropy", metrics=("accuracy",),
             batch_size: int = 256) -> dict:
    """Mean loss and metrics over ``data`` in eval mode, batch by batch, building no graph."""
    loss_fn = _loss_fn(loss)
    modes = _modes(model)
    model.eval()
    sums = {"loss": 0.0, "n": 0, **{m: 0.0 for m in metrics}}
    try:
        with no_grad():
            for xb, yb in _batches(data, batch_size):
                logits = model(Tensor(xb))
                n = len(xb)
                sums["loss"] += float(loss_fn(logits, yb).data) * n
                sums["n"] += n
                for m in metrics:
                    sums[m] += _METRICS[m](logits.data, yb) * n
    finally:
        _restore_modes(modes)
    return {k: sums[k] / max(sums["n"], 1) for k in ["loss", *metrics]}


def _modes(model) -> list:
    """(module, its training flag) for the model and every module in it."""
    modules = model.modules() if hasattr(model, "modules") else [model]
    return [(m, getattr(m, "training", False)) for m in modules]


def _restore_modes(modes: list) -> None:
    """Put back each module's own mode (a part kept in eval mode stays so)."""
    for m, training in modes:
        m.training = training


def predict(model, x, *, batch_size: int = 256) -> np.ndarray:
    """The model's outputs (logits) for the inputs ``x`` (an array (N, ...)), in eval mode."""
    x = x.data if isinstance(x, Tensor) else np.asarray(x)
    modes = _modes(model)
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, len(x), batch_size):
                outs.append(model(Tensor(x[i : i + batch_size])).data)
    finally:
        _restore_modes(modes)
    return np.concatenate(outs) if outs else np.zeros((0,))
