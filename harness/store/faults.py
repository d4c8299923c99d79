"""What goes wrong when a store is opened or used, as one `StoreError` each: what is wrong and how to fix it.

Every path that opens the store (the CLI's `Store`, `harness serve`'s warm-up) hands its exception to
`store_error`, so a URL that does not parse, an unknown dialect, a missing driver, a file that is not a SQLite
database, a damaged or half-made store and a store locked past the busy timeout all read the same wherever they
are met. `check_schema` refuses a store whose tables do not match its recorded revision before anything is
written to it.
"""

from __future__ import annotations

from collections.abc import Collection

from harness.errors import StoreError

URL_EXAMPLES = "sqlite:////abs/path/harness.db or postgresql+psycopg://user@host/db"
ELSEWHERE = "or point HARNESS_DB_URL at another store (a new SQLite file is made on first use)"


def store_label(url: str) -> str:
    """The store's URL without credentials, for messages."""
    return url.split("@")[-1]


def store_error(url: str, exc: BaseException, setting: str = "HARNESS_DB_URL") -> StoreError:
    """The user-facing error for `exc`, raised while opening or using the store at `url`, which the user gave
    in `setting` (an environment variable, or `harness serve --db`)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    label = store_label(url)
    if isinstance(exc, StoreError):
        return exc
    url_hint = f"check {setting}: use a SQLAlchemy URL such as {URL_EXAMPLES}"
    if isinstance(exc, NoSuchModuleError):
        dialect = url.split("://", 1)[0]
        return StoreError(f"cannot open the store at {label}: `{dialect}` is not a known kind of database", url_hint)
    if isinstance(exc, ArgumentError):
        return StoreError(f"cannot open the store at {label!r}: it is not a database URL", url_hint)
    if isinstance(exc, ImportError):
        return StoreError(
            f"cannot open the store at {label}: its database driver is not installed ({exc})",
            "install it (PostgreSQL: pip install 'psycopg[binary]'), or use a sqlite:/// URL",
        )
    if isinstance(exc, CommandError):
        return StoreError(
            f"the store {label} was written by another harness version ({exc})",
            "open it with the harness that wrote it, " + ELSEWHERE,
        )
    text = str(getattr(exc, "orig", None) or exc).strip()
    return _database_error(label, text.splitlines()[0] if text else type(exc).__name__)


def is_store_fault(exc: BaseException) -> bool:
    """Whether a database error met while using the store is the store's fault (unreachable, locked, read-only,
    damaged, not a database) rather than a bug in the harness's SQL, which keeps its traceback."""
    from sqlalchemy.exc import OperationalError

    text = str(getattr(exc, "orig", None) or exc)
    return isinstance(exc, OperationalError) or _missing_table(text) or _not_a_database(text)


def _missing_table(text: str) -> bool:
    """SQLite's and PostgreSQL's wordings of a query on a table the database lacks."""
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _not_a_database(text: str) -> bool:
    """SQLite's wordings of a file that is not a database."""
    return "not a database" in text or "file is encrypted" in text


def _database_error(label: str, text: str) -> StoreError:
    """A DBAPI error's text (SQLite's and PostgreSQL's wordings) as a store error."""
    if _not_a_database(text):
        return StoreError(
            f"the store {label} is not a SQLite database ({text})",
            "move the file away, " + ELSEWHERE,
        )
    if _missing_table(text):
        return StoreError(
            f"the store {label} is missing a table ({text}): it is damaged or not a harness store",
            "restore it from a backup, " + ELSEWHERE,
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"the store {label} is read-only ({text})",
            "make the database file and its folder writable, or set HARNESS_DB_URL",
        )
    if "locked" in text:
        return StoreError(
            f"the store {label} is locked by another process ({text})",
            "wait for the other process to finish and retry, or raise HARNESS_DB_BUSY_TIMEOUT_MS",
        )
    if "unable to open" in text:
        return StoreError(
            f"cannot open the store {label} ({text})",
            "check that the folder exists and is writable, or set HARNESS_DB_URL",
        )
    return StoreError(f"store error on {label}: {text}", "check that the database is reachable and is a harness store")


def check_schema(
    label: str, revision: str | None, head: str, tables: Collection[str], expected: Collection[str], own_file: bool
) -> None:
    """Refuse a store whose tables contradict its recorded revision before anything is written to it: tables but
    no revision (harness tables made outside the migrations, or, in a file of its own such as SQLite's, another
    program's database), or a store at `head` that lacks some of its tables (damaged)."""
    found = set(tables) - {"alembic_version"}
    strangers = found if own_file else found & set(expected)
    if revision is None and strangers:
        ours = strangers & set(expected)
        if ours:
            raise StoreError(
                f"the store {label} holds harness tables ({', '.join(sorted(ours))}) but no migration record "
                "(alembic_version): it was not made by `harness`",
                "restore it from a backup, " + ELSEWHERE,
            )
        raise StoreError(
            f"the store {label} is another program's database (tables {', '.join(sorted(strangers)[:5])}), "
            "not a harness store",
            "point HARNESS_DB_URL at a harness store, or at a new file (made on first use)",
        )
    missing = set(expected) - found
    if revision == head and missing:
        raise StoreError(
            f"the store {label} is missing its table(s) {', '.join(sorted(missing))}: it is damaged",
            "restore it from a backup, " + ELSEWHERE,
        )
