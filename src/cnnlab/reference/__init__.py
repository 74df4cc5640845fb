"""Nested-loop reference implementations, written as the course formulas (small sizes only).

They are the oracle the fast ops are tested against, and the documentation of what the fast
ops compute: loops over examples, output rows, output columns and channels.
"""

from cnnlab.reference.conv import conv_backward, conv_forward
from cnnlab.reference.pool import pool_backward, pool_forward

__all__ = ["conv_forward", "conv_backward", "pool_forward", "pool_backward"]
