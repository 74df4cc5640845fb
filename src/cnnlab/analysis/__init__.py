"""After training: what to do next (the course's second half).

``constraints``: satisficing constraints such as ``latency_ms<=100``, shared by
``cnnlab compare`` and ``cnnlab tune``.
"""

from cnnlab.analysis.constraints import Constraint, parse_constraint

__all__ = ["Constraint", "parse_constraint"]
