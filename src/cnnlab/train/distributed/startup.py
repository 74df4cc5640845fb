"""The start-up check of a data-parallel run: every process must be about to train the same
model on the same data with the same settings, and every one must have got that far.

Each process sends one small JSON record to all the others (an allgather): the error that
stopped it while it prepared, if any, and digests of what it is about to train: its settings,
the model's architecture (the module tree and every parameter's shape), the data (sizes, dtypes,
a hash of the labels and of a sample of the images) and the cnnlab version. Rank 0 turns the
first error, or the first disagreement, into one line; every process raises DistributedError
with it, so that all of them exit together.
"""

from __future__ import annotations

import hashlib
import json
import socket

import numpy as np

from cnnlab.train.distributed.world import DistributedError

__all__ = ["digest", "data_digest", "model_digest", "agree"]

_SAMPLE = 64  # images hashed from each end of a dataset (hashing all of CIFAR takes seconds)


def digest(obj) -> str:
    """A short hash of JSON-able ``obj`` (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def data_digest(dataset) -> str:
    """Hash of a dataset's size, shapes, dtypes, all labels and the first and last images."""
    if dataset is None:
        return "none"
    if isinstance(dataset, (tuple, list)):
        x, y = np.asarray(dataset[0]), np.asarray(dataset[1])
    else:
        x, y = getattr(dataset, "x", None), getattr(dataset, "y", None)
    h = hashlib.blake2b(digest_size=8)
    h.update(str(len(dataset) if x is None else len(x)).encode())
    for a in (x, y):
        if a is None:
            continue
        a = np.asarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        part = a if a is y else np.concatenate([a[:_SAMPLE], a[-_SAMPLE:]])
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def model_digest(model) -> str:
    """Hash of the module tree and every parameter's and buffer's name and shape."""
    shapes = {k: list(np.shape(v)) for k, v in model.state_dict().items()}
    return digest({"repr": repr(model), "shapes": shapes})


def _describe(facts: dict, other: dict) -> str:
    """'lr=0.01' style list of what differs between two records."""
    parts = []
    for key in sorted(set(facts) | set(other)):
        a, b = facts.get(key), other.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            inner = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            parts += [f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in inner]
        else:
            parts.append(f"{key} {a} vs {b}")
    return ", ".join(parts)


def agree(world, facts: dict | None = None, error: str | None = None) -> None:
    """Collective: return when every process is ready with the same ``facts``; otherwise
    raise DistributedError on every process with one line (the first error, or what the
    first disagreeing rank differs in). Call it exactly once per process, also from an
    error path (with ``error``), so that the others are not left waiting."""
    import cnnlab

    record = {"error": error, "host": socket.gethostname(),
              "facts": {"cnnlab": getattr(cnnlab, "__version__", "?"), **(facts or {})}}
    records = world.allgather_json(record, what="the start-up check")
    failed = [(r, rec) for r, rec in enumerate(records) if rec["error"]]
    if failed:
        messages = {rec["error"] for _, rec in failed}
        if len(failed) == world.size and len(messages) == 1:  # the same mistake everywhere
            raise DistributedError(failed[0][1]["error"])
        r, rec = failed[0]
        others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise DistributedError(f"rank {r} of {world.size} (host {rec['host']}){others}: "
                               f"{rec['error']}")
    root = records[0]["facts"]
    for r, rec in enumerate(records[1:], start=1):
        if rec["facts"] != root:
            raise DistributedError(
                f"the processes disagree: rank {r} (host {rec['host']}) differs from rank 0 "
                f"(host {records[0]['host']}) in {_describe(rec['facts'], root)}; start every "
                "process with the same command, data and cnnlab version")
