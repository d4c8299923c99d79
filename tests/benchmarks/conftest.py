"""Fixtures of the benchmarks: the large synthetic store, kept between sessions (see synthetic_cache_dir)."""

from __future__ import annotations

import pytest

from tests.benchmarks.synthetic_store import SyntheticStore, cached_synthetic_store, synthetic_cache_dir


@pytest.fixture(scope="session")
def synthetic_store(request: pytest.FixtureRequest) -> SyntheticStore:
    return cached_synthetic_store(synthetic_cache_dir(request.config))
