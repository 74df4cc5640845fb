"""cnnlab._malloc through cnnlab.runtime: on Linux with glibc, importing cnnlab leaves malloc
alone; inside a runtime with keep_memory freed arrays stay with the process for reuse, and when
it ends glibc's thresholds are set back (freed pages go back to the kernel again);
keep_memory=False or CNNLAB_KEEP_MEMORY=0 leave glibc's defaults. Each case runs in a fresh
interpreter, since the setting is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = """
import sys
import numpy as np
import cnnlab

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

def freed():  # RSS change after freeing a 16 MB array (every page touched)
    a = np.ones(16 << 20, np.uint8)
    before = rss_mb()
    del a
    return rss_mb() - before

keep = {"none": None, "on": True, "off": False}[sys.argv[1]]
out = []
if sys.argv[2] == "bare-held-after":
    out.append(freed())  # after import cnnlab, before any runtime
with cnnlab.runtime.configure(threads=1, keep_memory=keep):
    out.append(freed())
if sys.argv[2] == "bare-held-after":
    out.append(freed())
print(*out)
"""


def _freed(keep: str, steps: str, env_keep: str = "1"):
    env = {**os.environ, "CNNLAB_KEEP_MEMORY": env_keep}
    out = subprocess.run([sys.executable, "-c", CHILD, keep, steps], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return [float(v) for v in out]


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):  # musl, or no confstr
        return False


needs_glibc = pytest.mark.skipif(not _glibc(), reason="glibc's mallopt only")


@needs_glibc
def test_import_changes_nothing_and_the_runtime_keeps_memory_only_while_held():
    bare, held, after = _freed("on", "bare-held-after")
    assert bare < -12, f"import alone: RSS changed by {bare:.1f} MB after freeing 16 MB"
    assert held > -4, f"in the runtime: RSS fell by {-held:.1f} MB after freeing 16 MB"
    assert after < -12, f"after the runtime: RSS changed by {after:.1f} MB after freeing 16 MB"


@needs_glibc
@pytest.mark.parametrize("keep,env_keep", [("off", "1"), ("none", "0")])
def test_opt_out_leaves_glibc_defaults(keep, env_keep):
    """keep_memory=False, or None with CNNLAB_KEEP_MEMORY=0: freed pages go back (the
    process's first large block: glibc's own dynamic threshold keeps later ones)."""
    (held,) = _freed(keep, "held", env_keep)
    assert held < -12, f"RSS changed by {held:.1f} MB after freeing a 16 MB array"


def test_nothing_is_set_off_linux(monkeypatch):
    from cnnlab import _malloc

    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert _malloc.keep_freed_memory() is False
    assert _malloc.restore_defaults() is False
