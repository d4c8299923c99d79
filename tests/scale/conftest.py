"""Fixtures of the scale-out tests: one PostgreSQL server and one local Ray cluster per test session.

PostgreSQL comes from `scripts/start_postgres.sh` (or `HARNESS_TEST_POSTGRES_URL`, a server whose role may
create databases); each test gets a database of its own. The Ray cluster is a head plus one worker node on
127.0.0.2 whose `fake_gpu` resource stands in for GPUs. A test skips, saying why, where a service cannot start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.cluster import GPU_STAND_IN, PostgresServer, RayCluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    given = os.environ.get("HARNESS_TEST_POSTGRES_URL")
    if given:
        yield PostgresServer(data_dir=Path("/nonexistent"), url=given)
        return
    if os.geteuid() != 0 and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL is not installed and cannot be installed without root (set HARNESS_TEST_POSTGRES_URL)")
    # Not under pytest's private temp folder: the server runs as the `postgres` account, which cannot enter it.
    server = PostgresServer(data_dir=Path(tempfile.gettempdir()) / f"harness-pg-{uuid.uuid4().hex[:8]}")
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture()
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database()
    yield url
    from harness.store import repo

    for key in [k for k in repo._stores if k == url]:
        repo._stores.pop(key).engine.dispose()
    postgres.drop_database(url)


@pytest.fixture()
def pg_env(session_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Like `harness_env`, with the store in a fresh PostgreSQL database."""
    monkeypatch.setenv("HARNESS_HOME", str(session_home))
    monkeypatch.setenv("HARNESS_DB_URL", pg_url)
    return {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": pg_url}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'ray[default]')")
    # A short folder: Ray's Unix socket paths must stay under 108 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="hray-", dir="/tmp"))
    cluster = RayCluster(temp_dir)
    try:
        cluster.start()
    except RuntimeError as exc:
        shutil.rmtree(temp_dir, ignore_errors=True)
        pytest.skip(f"cannot start a local Ray cluster: {exc}")
    yield cluster
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture()
def ray_env(ray_cluster: RayCluster) -> dict[str, str]:
    """Driver settings that send every task to the worker node's GPU stand-in."""
    return {"HARNESS_RAY_RESOURCES": f'{{"{GPU_STAND_IN}": 1}}', "RAY_ADDRESS": ray_cluster.address}
