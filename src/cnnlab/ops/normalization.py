"""Batch normalization.  (TO BE WRITTEN)"""

__all__ = ["batch_norm"]


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.9, eps=1e-5):
    raise NotImplementedError
