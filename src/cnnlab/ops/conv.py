"""Convolution.  (TO BE WRITTEN)"""

__all__ = ["conv2d"]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1): raise NotImplementedError
