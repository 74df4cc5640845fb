"""The parts of data-parallel training that need no MPI: shares of a batch, the launcher's
environment, the start-up check's verdicts, the --processes command line, and SyncBatchNorm's
formulas on two simulated ranks (threads), against one-process batch norm on the whole batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnlab import functional as F
from cnnlab.data.loader import DataLoader
from cnnlab.tensor import Tensor
from cnnlab.train.distributed import (
    DistributedError,
    ShardedLoader,
    agree,
    launched_rank,
    launched_size,
    share_bounds,
)
from cnnlab.train.distributed.syncbn import SyncBatchNormOp


@given(n=st.integers(0, 300), size=st.integers(1, 9))
def test_share_bounds_are_array_split(n, size):
    parts = np.array_split(np.arange(n), size)
    for rank, part in enumerate(parts):
        lo, hi = share_bounds(n, size, rank)
        assert np.array_equal(np.arange(n)[lo:hi], part)


@pytest.mark.parametrize("n, batch, size", [(50, 8, 2), (50, 7, 3), (49, 16, 2), (17, 4, 4)])
def test_shards_together_are_the_single_process_batches(n, batch, size):
    x = np.arange(n, dtype=np.float32).reshape(n, 1)
    y = np.arange(n)
    one = DataLoader((x, y), batch, shuffle=True, seed=3)
    one.set_epoch(2)
    shards = []
    for rank in range(size):
        loader = ShardedLoader((x, y), batch, rank, size, shuffle=True, seed=3)
        loader.set_epoch(2)
        shards.append(list(loader))
        assert len(loader) == len(shards[-1])
    expected = [yb for _, yb in one if len(yb) >= size]  # a tail smaller than p is skipped
    assert len(shards[0]) == len(expected)
    for b, yb in enumerate(expected):
        assert np.array_equal(np.concatenate([s[b][1] for s in shards]), yb)
        sizes = [len(s[b][1]) for s in shards]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        assert ShardedLoader((x, y), batch, 0, size).global_size(b) == len(yb)


def test_a_batch_smaller_than_the_world_is_refused():
    with pytest.raises(ValueError, match=r"the global batch size \(2\) must be at least the "
                                         r"number of processes \(3\)"):
        ShardedLoader((np.zeros((8, 1)), np.zeros(8)), 2, 0, 3)


@pytest.mark.parametrize("environ, size, rank", [
    ({}, 1, 0),
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2"}, 4, 2),
    ({"PMI_SIZE": "2", "PMI_RANK": "1"}, 2, 1),
    ({"OMPI_COMM_WORLD_SIZE": "x"}, 1, 0),
])
def test_the_launchers_environment(environ, size, rank):
    assert launched_size(environ) == size
    assert launched_rank(environ) == rank


class _Gathered:
    """A World stand-in whose allgather returns given records (the other ranks' answers)."""

    def __init__(self, rank, records):
        self.rank, self.size, self.records = rank, len(records), records

    def allgather_json(self, obj, what=""):
        records = list(self.records)
        records[self.rank] = {**obj, "host": records[self.rank]["host"]}  # this one's answer
        return records


def _record(error=None, host="a", **facts):
    import cnnlab

    return {"error": error, "host": host,
            "facts": {"cnnlab": getattr(cnnlab, "__version__", "?"), **facts}}


def test_agree_passes_when_all_are_ready_and_alike():
    agree(_Gathered(0, [_record(x=1), _record(x=1)]), {"x": 1})


@pytest.mark.parametrize("records, message", [
    ([_record(x=1), _record("bad file", host="b")], r"^rank 1 of 2 \(host b\): bad file$"),
    ([_record("same"), _record("same")], r"^same$"),
    ([_record(x=1), _record("e1"), _record("e2")], r"^rank 1 of 3 \(host a\) \(and 1 more\): e1$"),
    ([_record(s={"lr": 0.1}), _record(s={"lr": 0.2}, host="b")],
     r"^the processes disagree: rank 1 \(host b\) differs from rank 0 \(host a\) in "
     r"lr=0.2 vs 0.1; start every process with the same command, data and cnnlab version$"),
    ([_record(data="d1"), _record(data="d2")], r"in data d2 vs d1;"),
])
def test_agree_turns_the_first_problem_into_one_line(records, message):
    for rank in range(len(records)):  # every process raises the same
        mine = records[rank]
        with pytest.raises(DistributedError, match=message):
            facts = {k: v for k, v in mine["facts"].items() if k != "cnnlab"}
            agree(_Gathered(rank, records), facts, mine["error"])


def test_processes_rebuilds_the_command_line():
    from cnnlab.cli.main import build_parser
    from cnnlab.cli.mpi import _train_argv

    line = ["train", "--model", "lenet5", "--epochs", "3", "--augment", "--lr", "0.5",
            "--freeze", "conv1", "--freeze", "conv2", "--from", "w.npz", "--processes", "2",
            "--sync-bn"]
    args = build_parser().parse_args(line)
    again = build_parser().parse_args(["train", *_train_argv(args)])
    assert again.processes is None
    assert {k: v for k, v in vars(again).items() if k != "processes"} == {
        k: v for k, v in vars(args).items() if k != "processes"}


class _ThreadWorld:
    """Two ranks as two threads: allreduce_ sums the ranks' buffers (a barrier between)."""

    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size)
        self.slots = [None] * size

    def rank_view(self, rank):
        world = self

        class View:
            def allreduce_(self, buf, what=""):
                world.slots[rank] = buf.copy()
                world.barrier.wait()
                total = np.sum(world.slots, axis=0)
                world.barrier.wait()
                buf[...] = total
                return buf

        return View()


@pytest.mark.parametrize("shape, split", [((9, 3, 4, 5), [5, 4]), ((12, 6), [6, 6])])
def test_sync_batch_norm_on_two_ranks_is_batch_norm_on_the_whole_batch(shape, split):
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, shape)  # float64: the formulas, not the rounding
    gy = rng.normal(size=shape)
    c = shape[-1]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    # the oracle: one process, the whole batch, the loss sum(gy * y) / B
    xt, gt, bt = Tensor(x, requires_grad=True), Tensor(gamma, requires_grad=True), \
        Tensor(beta, requires_grad=True)
    rm, rv = np.zeros(c), np.ones(c)
    y = F.batch_norm(xt, gt, bt, rm, rv, training=True)
    (y * Tensor(gy / shape[0])).sum().backward()

    world = _ThreadWorld(2)
    bounds = np.cumsum([0, *split])
    results = [None, None]

    def rank(r):
        lo, hi = bounds[r], bounds[r + 1]
        op = SyncBatchNormOp(world.rank_view(r), np.zeros(c), np.ones(c), 0.9, 1e-5)
        yr = op.forward(x[lo:hi], gamma, beta)
        # rank r's upstream gradient is that of ITS mean loss: gy / n_r
        gx, ggamma, gbeta = op.backward(gy[lo:hi] / (hi - lo))
        results[r] = (yr, gx, ggamma, gbeta, op.running_mean, op.running_var)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    w = [n / shape[0] for n in split]  # the trainer's average weights n_r / B
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), y.data, rtol=1e-12)
    # dL/dx: rank r's gradient times w_r is the one-process gradient of its rows
    np.testing.assert_allclose(np.concatenate([w[r] * results[r][1] for r in range(2)]),
                               xt.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sum(w[r] * results[r][2] for r in range(2)), gt.grad, rtol=1e-10)
    np.testing.assert_allclose(sum(w[r] * results[r][3] for r in range(2)), bt.grad, rtol=1e-10)
    for r in range(2):  # running statistics: the global batch's, on every rank
        np.testing.assert_allclose(results[r][4], rm, rtol=1e-12)
        np.testing.assert_allclose(results[r][5], rv, rtol=1e-12)
