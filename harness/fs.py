"""Writing folders and files so that a reader never sees half of one: build beside the target, then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def publish_dir(target: Path, fill: Callable[[Path], None]) -> bool:
    """Make `target` once: `fill` writes a fresh staging folder beside it, which is then renamed into place.
    Concurrent callers are safe: the first rename wins, the others' staging folders are dropped. Returns
    whether this call made it (False when it existed, or another process made it first)."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:24]}-", dir=target.parent))
    try:
        fill(staging)
        os.rename(staging, target)
        return True
    except OSError:
        if not target.exists():
            raise
        return False
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
