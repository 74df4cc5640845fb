"""cnnlab.runtime from the outside: importing cnnlab and convolving outside a runtime leave a
fresh process's BLAS threads as they were (a child interpreter, threadpoolctl as the oracle),
and fit() holds the runtime while it trains and gives it back. The runtime's own behaviour
(BLAS before/during/after, nesting, errors) is tested in tests/ops/test_parallel.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import models, optim, runtime
from cnnlab.train import Callback, fit

threadpoolctl = pytest.importorskip("threadpoolctl")  # in the test extra; CI installs it

CHILD = """
import json
import numpy as np
from threadpoolctl import threadpool_info

def blas():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

np.ones((64, 64)) @ np.ones((64, 64))
before = blas()
import cnnlab as cl
from cnnlab import functional as F
after_import = blas()
x = cl.tensor(np.ones((8, 12, 12, 16), np.float32), requires_grad=True)
F.conv2d(x, cl.tensor(np.ones((3, 3, 16, 16), np.float32)), padding=1).sum().backward()
print(json.dumps([before, after_import, blas()]))
"""


def test_import_and_a_bare_convolution_leave_blas_threads_alone():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True).stdout
    before, after_import, after_conv = json.loads(out.strip().splitlines()[-1])
    assert before and after_import == before and after_conv == before


class _Spy(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_begin(self, epoch):
        self.seen.append(runtime.active())


def test_fit_holds_the_runtime_while_training_and_gives_it_back():
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    model = models.get("lenet5", seed=0)
    spy = _Spy()
    assert runtime.active() is None
    fit(model, (x, y), optimizer=optim.SGD(model.parameters(), lr=0.01), epochs=2,
        batch_size=8, callbacks=[spy], verbose=False)
    assert len(spy.seen) == 2 and all(r is not None for r in spy.seen)
    assert spy.seen[0].threads is None  # cl.get_num_threads()
    assert runtime.active() is None
    assert cl.ops.parallel.share_count() == 1
