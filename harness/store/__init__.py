"""The store: every submission and run, in SQL (SQLite by default, any SQLAlchemy URL by HARNESS_DB_URL)."""

from harness.store.repo import Store, open_store

__all__ = ["Store", "open_store"]
