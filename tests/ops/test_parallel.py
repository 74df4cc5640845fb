"""cnnlab.ops.parallel and cnnlab.runtime: batch chunks dealt to threads while a runtime is
held, BLAS held to one thread only while it is held and the user's threads given back, nothing
threaded or limited outside it, the serial fallbacks (one thread, nested calls, no
threadpoolctl), and the dense layer split into feature blocks. The convolution's results under
threads are checked against the nested loops in test_conv.py (test_batch_chunks_match_reference
and test_banded_rows_match_reference run with 1 and 3 threads)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import kernels, runtime
from cnnlab.ops import parallel

threadpoolctl = pytest.importorskip("threadpoolctl")  # in the test extra; CI installs it


@pytest.fixture(autouse=True)
def default_threads():
    """Every test starts with the default thread count and no runtime, and ends so."""
    parallel._state["threads"] = None
    yield
    while runtime.active() is not None:
        runtime.active().stop()
    parallel._state["threads"] = None


def _held(threads):
    return runtime.configure(threads=threads, keep_memory=False)


def _chunks(n):
    return [slice(i, i + 1) for i in range(n)]


def _blas_threads():
    return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]


def test_chunks_are_dealt_round_robin_and_results_keep_share_order():
    _held(3).start()

    def work(share):
        return [c.start for c in share], threading.current_thread().name

    out = parallel.map_chunks(work, _chunks(7))
    assert [starts for starts, _ in out] == [[0, 3, 6], [1, 4], [2, 5]]
    names = [name for _, name in out]
    assert names[0] == threading.current_thread().name  # the caller takes the first share
    assert all(name.startswith("cnnlab") for name in names[1:])


def test_the_runtime_holds_blas_to_one_thread_and_gives_the_users_back():
    """BLAS threads before (the user's 2), during (1, inside the shares too, and after a
    convolution), after (the user's 2 again)."""
    np.ones((8, 8)) @ np.ones((8, 8))  # BLAS loaded
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(8, 9, 9, 4)), rng.normal(size=(3, 3, 4, 5))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert _blas_threads() == [2]
        with _held(2):
            assert _blas_threads() == [1]
            assert parallel.map_chunks(lambda share: _blas_threads(), _chunks(4)) == [[1], [1]]
            F.conv2d(cl.tensor(x, requires_grad=True), cl.tensor(w)).sum().backward()
            assert _blas_threads() == [1]
        assert _blas_threads() == [2]


def test_outside_a_runtime_nothing_is_threaded_or_limited():
    """A bare conv2d (forward and backward, several chunks) leaves the user's BLAS threads as
    they were, and every chunk runs on the calling thread."""
    np.ones((8, 8)) @ np.ones((8, 8))
    cl.set_num_threads(2)
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(8, 9, 9, 4)), rng.normal(size=(3, 3, 4, 5))
    with threadpoolctl.threadpool_limits(2, user_api="blas"), kernels.use(chunk_images=1):
        xt = cl.tensor(x, requires_grad=True)  # 8 images, 8 chunks
        F.conv2d(xt, cl.tensor(w, requires_grad=True)).sum().backward()
        assert _blas_threads() == [2]
    assert parallel._state["pool"] is None  # no worker thread was started
    assert parallel.share_count() == 1
    assert parallel.map_chunks(lambda s: threading.current_thread().name, _chunks(4)) == [
        threading.current_thread().name]


def test_nested_runtimes_give_back_in_order():
    """An inner runtime's thread count applies while it is held; BLAS stays limited until the
    outermost ends."""
    np.ones((8, 8)) @ np.ones((8, 8))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with _held(2) as outer:
            assert runtime.active() is outer and parallel.share_count() == 2
            with _held(3) as inner:
                assert runtime.active() is inner and parallel.share_count() == 3
                assert len(parallel.map_chunks(len, _chunks(6))) == 3
            assert runtime.active() is outer and parallel.share_count() == 2
            assert _blas_threads() == [1]
        assert runtime.active() is None and parallel.share_count() == 1
        assert _blas_threads() == [2]


@pytest.mark.parametrize("bad,what", [(0, "threads"), (1.5, "threads"), (True, "threads"),
                                      ("yes", "keep_memory")])
def test_runtime_settings_are_checked(bad, what):
    with pytest.raises(ValueError, match=rf"runtime.configure: {what} must be"):
        runtime.configure(**{what: bad})


def test_a_runtime_cannot_be_started_twice():
    r = _held(2).start()
    with pytest.raises(RuntimeError, match="already started"):
        r.start()
    r.stop()
    r.stop()  # a second stop does nothing
    assert runtime.active() is None


def test_fewer_chunks_than_threads_uses_one_share_per_chunk():
    _held(4).start()
    assert parallel.map_chunks(len, _chunks(2)) == [1, 1]
    assert parallel.map_chunks(len, []) == [0]  # an empty batch: one call, no chunks


def test_an_error_in_a_share_reaches_the_caller_and_frees_the_region():
    _held(2).start()

    def work(share):
        if share[0].start == 1:
            raise ValueError("share 1 failed")
        return len(share)

    with pytest.raises(ValueError, match="share 1 failed"):
        parallel.map_chunks(work, _chunks(4))
    assert parallel.map_chunks(len, _chunks(4)) == [2, 2]  # the lock was released


def test_nested_calls_run_serially_on_the_share_thread():
    _held(2).start()

    def outer(share):
        return parallel.map_chunks(len, _chunks(6))

    assert parallel.map_chunks(outer, _chunks(2)) == [[6], [6]]


def test_one_thread_or_no_threadpoolctl_runs_everything_on_the_caller(monkeypatch):
    _held(1).start()
    assert parallel.map_chunks(len, _chunks(5)) == [5]
    assert parallel.share_count() == 1
    _held(3).start()
    monkeypatch.setitem(parallel._state, "blas", False)  # as if threadpoolctl were missing
    assert parallel.map_chunks(len, _chunks(5)) == [5]
    assert parallel.share_count() == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", None])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be an int >= 1; received"):
        cl.set_num_threads(bad)


def test_set_and_get_num_threads():
    cl.set_num_threads(3)
    assert cl.get_num_threads() == 3


@pytest.mark.parametrize("value,want", [("3", 3), (" 1 ", 1)])
def test_environment_variable_sets_the_default(monkeypatch, value, want):
    monkeypatch.setenv("CNNLAB_NUM_THREADS", value)
    assert cl.get_num_threads() == want


@pytest.mark.parametrize("value", ["abc", "0", "-1", "2.5"])
def test_environment_variable_must_be_a_positive_int(monkeypatch, value):
    monkeypatch.setenv("CNNLAB_NUM_THREADS", value)
    with pytest.raises(ValueError, match=r"CNNLAB_NUM_THREADS must be a positive integer"):
        cl.get_num_threads()


def test_chunks_are_even_and_a_multiple_of_the_threads():
    _held(2).start()
    size = 3 << 20
    per_image = size // 3  # three images a chunk
    chunks = parallel.batch_chunks(10, per_image, size)  # 4 chunks, rounded to a multiple of 2
    assert [c.stop - c.start for c in chunks] == [2, 3, 2, 3]
    assert parallel.batch_chunks(1, per_image, size) == [slice(0, 1)]
    assert parallel.batch_chunks(0, per_image, size) == []
    assert len(parallel.batch_chunks(10, 16, size)) == 1  # too little work to wake a thread


def test_results_come_in_share_order_when_shares_finish_out_of_order():
    """Partial sums are added in share order, so a thread count gives the same sums each run."""
    import time

    _held(3).start()

    def work(share):
        if share[0].start == 0:
            time.sleep(0.05)  # the first share finishes last
        return share[0].start

    assert parallel.map_chunks(work, _chunks(6)) == [0, 1, 2]


def test_two_user_threads_convolving_at_once_get_the_loops_results():
    """One takes the threaded region, the other runs serially meanwhile: both are right."""
    from cnnlab.reference.conv import conv_backward, conv_forward

    _held(2).start()
    rng = np.random.default_rng(0)
    cases = [(rng.normal(size=(6, 9, 9, 12)), rng.normal(size=(3, 3, 12, 20))) for _ in range(2)]
    results = [None, None]

    def run(i):
        x, w = cases[i]
        for _ in range(5):
            xt, wt = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
            with kernels.use(chunk_images=1):  # 6 chunks (per thread: a context each)
                y = F.conv2d(xt, wt, padding=1)
                y.backward(np.ones(y.shape))
        results[i] = (y.numpy(), xt.grad, wt.grad)

    users = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in users:
        t.start()
    for t in users:
        t.join()
    for (x, w), (y, gx, gw) in zip(cases, results):
        z, cache = conv_forward(x, w, None, 1, 1)
        dA, dW, _ = conv_backward(np.ones(z.shape), cache)
        np.testing.assert_allclose(y, z, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gx, dA, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gw, dW, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork is POSIX")
def test_a_forked_child_runs_threaded_calls():
    """After fork the child has none of the parent's worker threads: it starts its own."""
    import multiprocessing

    _held(2).start()
    parallel.map_chunks(len, _chunks(4))  # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        result = pool.apply_async(parallel.map_chunks, (len, _chunks(4)))
        assert result.get(timeout=30) == [2, 2]


def test_no_cpu_pinning_where_the_platform_has_none(monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity")
    monkeypatch.setitem(parallel._state, "placed_for", None)
    assert parallel._current_cpu() is None
    _held(2).start()
    assert parallel.map_chunks(len, _chunks(4)) == [2, 2]


@pytest.mark.parametrize("threads", [1, 3], indirect=True)
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_layer_in_feature_blocks_matches_pytorch(monkeypatch, torch, threads, with_bias):
    """A W large enough to split (here: blocks of 3 features) gives PyTorch's Z, dX, dW, db."""
    from cnnlab.ops import linear as linear_module

    monkeypatch.setattr(linear_module, "_BLOCK_BYTES", 3 * 8 * 11)
    assert len(parallel.batch_chunks(10, (11 + 5) * 8, linear_module._BLOCK_BYTES)) >= 3
    rng = np.random.default_rng(threads)
    x, w = rng.normal(size=(5, 11)), rng.normal(size=(11, 10))
    b = rng.normal(size=10) if with_bias else None
    gy = rng.normal(size=(5, 10))
    xt, wt = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
    bt = None if b is None else cl.tensor(b, requires_grad=True)
    F.linear(xt, wt, bt).backward(gy)
    z = F.linear(cl.tensor(x), cl.tensor(w), None if b is None else cl.tensor(b)).numpy()

    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    tz = torch.nn.functional.linear(tx, tw.T, tb)
    tz.backward(torch.tensor(gy))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    if with_bias:
        np.testing.assert_allclose(bt.grad, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux and two CPUs",
)
def test_workers_are_pinned_off_the_callers_cpu():
    """After a threaded call the workers may run on every allowed CPU but the caller's."""
    _held(2).start()
    allowed = os.sched_getaffinity(0)
    for _ in range(3):  # the first call may start the worker after the placement
        parallel.map_chunks(len, _chunks(4))
    here = parallel._current_cpu()
    workers = parallel._state["workers"]
    assert len(workers) == 1
    pinned = os.sched_getaffinity(workers[0])
    assert pinned <= allowed and len(pinned) == len(allowed) - 1
    if parallel._state["placed_for"] == here:  # the caller has not moved since
        assert pinned == allowed - {here}
    assert os.sched_getaffinity(0) == allowed  # the caller itself is never pinned
