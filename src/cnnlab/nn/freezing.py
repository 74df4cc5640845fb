"""Frozen batch normalization: what freezing a network's parameters does to its batch norms.

Freezing a parameter (``requires_grad = False``) stops gradient descent from changing it, but
batch normalization also keeps running statistics, which training mode keeps updating from every
batch. A frozen part of a network should compute the same function during fine-tuning as in
inference, so a batch-norm layer whose parameters are all frozen is switched to
:class:`FrozenBatchNorm2D` (or 1D): it always normalizes with its running statistics and never
updates them (Keras's behaviour for a non-trainable batch norm). :meth:`Module.freeze
<cnnlab.nn.Module.freeze>` does this by default; :meth:`~cnnlab.nn.Module.unfreeze` undoes it.
"""

from __future__ import annotations

from cnnlab.nn.normalization import BatchNorm1D, BatchNorm2D

__all__ = ["FrozenBatchNorm1D", "FrozenBatchNorm2D", "freeze_bn_stats", "thaw_bn_stats"]


class _FrozenMixin:
    """``training`` reads False whatever ``train()`` sets: running statistics are used, and
    never updated (y = gamma (x - running_mean) / sqrt(running_var + eps) + beta)."""

    @property
    def training(self):
        return False

    @training.setter
    def training(self, value):
        pass  # model.train() must not bring back batch statistics in a frozen layer


class FrozenBatchNorm2D(_FrozenMixin, BatchNorm2D):
    """A BatchNorm2D that stays in inference mode (see the module docstring); same state names.

    y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, per channel; the
    gradients are those of batch norm in eval mode: dx = dy * gamma / sqrt(running_var + eps).

    Shape: (N, H, W, C) -> (N, H, W, C).

    >>> import numpy as np, cnnlab as cl
    >>> FrozenBatchNorm2D(4)(cl.tensor(np.zeros((1, 2, 2, 4), np.float32))).shape
    (1, 2, 2, 4)
    """


class FrozenBatchNorm1D(_FrozenMixin, BatchNorm1D):
    """A BatchNorm1D that stays in inference mode (see :class:`FrozenBatchNorm2D`).

    Shape: (N, F) -> (N, F).

    >>> import numpy as np, cnnlab as cl
    >>> FrozenBatchNorm1D(4)(cl.tensor(np.zeros((2, 4), np.float32))).shape
    (2, 4)
    """


_FROZEN = {BatchNorm2D: FrozenBatchNorm2D, BatchNorm1D: FrozenBatchNorm1D}
_THAWED = {v: k for k, v in _FROZEN.items()}


def freeze_bn_stats(model) -> None:
    """Switch every batch norm whose parameters are all frozen to its frozen class (in place:
    the object, its parameters and buffers stay the same, only its class changes)."""
    for _, module in model.named_modules():
        frozen_cls = _FROZEN.get(type(module))
        if frozen_cls is not None and not any(p.requires_grad for p in module.parameters()):
            module.__class__ = frozen_cls


def thaw_bn_stats(model) -> None:
    """Back to ordinary batch norm where some parameter is trainable again."""
    for _, module in model.named_modules():
        cls = _THAWED.get(type(module))
        if cls is not None and any(p.requires_grad for p in module.parameters()):
            module.__class__ = cls
            module.training = model.training
