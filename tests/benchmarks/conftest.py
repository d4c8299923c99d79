"""Fixtures of the benchmarks: the large synthetic store, kept in pytest's cache between sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.synthetic_store import SyntheticStore, cached_synthetic_store


@pytest.fixture(scope="session")
def synthetic_store(request: pytest.FixtureRequest) -> SyntheticStore:
    return cached_synthetic_store(Path(request.config.cache.mkdir("leaderboard-synthetic")))
