"""Fixtures of the tune tests: Optuna (required when CNNLAB_REQUIRE_ORACLES=1) and a real
PostgreSQL server started for the session (Debian's postgresql package: initdb into a
temporary folder, a free loopback port)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from tests.oracles import missing


@pytest.fixture(scope="session")
def optuna():
    try:
        import optuna
    except ImportError:
        missing('Optuna is not installed (pip install "cnnlab[tune]")')
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url(optuna):
    """postgresql://postgres@127.0.0.1:PORT/tune on a server of our own, stopped at the end."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing('psycopg is not installed (pip install "cnnlab[tune-postgres]")')
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="cnnlab-pg-")
    prefix = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own user
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()

    def run(*cmd):
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)

    r = run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert r.returncode == 0, r.stdout + r.stderr
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    r = run(pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start")
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
        for _ in range(50):
            try:
                with engine.connect() as c:
                    c.execute(sqlalchemy.text("CREATE DATABASE tune"))
                break
            except sqlalchemy.exc.OperationalError:
                time.sleep(0.2)
        engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        run(pg_ctl, "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
