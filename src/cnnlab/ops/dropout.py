"""Inverted dropout.  (TO BE WRITTEN)"""

__all__ = ["dropout"]


def dropout(x, rate, training=True, rng=None): raise NotImplementedError
