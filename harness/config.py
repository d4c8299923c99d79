"""Where the harness keeps its state: the store URL and the home folder (datasets, stored submissions)."""

from __future__ import annotations

import os
from pathlib import Path


def harness_home() -> Path:
    """`HARNESS_HOME`, default `./.harness` beside the default database."""
    return Path(os.environ.get("HARNESS_HOME", ".harness")).resolve()


def db_url() -> str:
    """`HARNESS_DB_URL`, default a SQLite file `./harness.db`."""
    url = os.environ.get("HARNESS_DB_URL")
    if url:
        return url
    return f"sqlite:///{Path('harness.db').resolve()}"


def datasets_dir() -> Path:
    return harness_home() / "datasets"


def submissions_dir() -> Path:
    return harness_home() / "submissions"
