"""The public/private split of a competition phase's hidden test set, and the organiser's secret key.

Each image id gets a rank: HMAC-SHA256(key, id) (its first 8 bytes, big-endian; the id breaks the rare tie).
The public part is the round(fraction × n) ids of lowest rank, so its size is the configured fraction of the
test set exactly (a per-id threshold would wander by ±1.6 points on 1,000 ids at 0.5, one standard deviation of
a binomial), and the split is deterministic for a key and the set of ids, whatever their order, and unknowable
without the key: participants see public scores during a phase and cannot tell which images they come from, so
they cannot tune to the public part alone. A different key gives a different split.

The key is the organiser's secret and lives outside the bundle (which participants may see): a file holding
64 hex digits, created with mode 0600 in a folder created with mode 0700. A key file that others can read is
refused, as ssh refuses a private key that others can read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from harness.errors import CompetitionError

KEY_BYTES = 32


def _rank(key: bytes, image_id: str) -> tuple[int, str]:
    return int.from_bytes(hmac.new(key, image_id.encode(), hashlib.sha256).digest()[:8], "big"), image_id


def public_mask(ids: Sequence[str], key: bytes, fraction: float) -> list[bool]:
    """For each id, in order: is it in the public part?"""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    unique = sorted(set(map(str, ids)), key=lambda i: _rank(key, i))
    public = set(unique[: round(fraction * len(unique))])
    return [str(i) in public for i in ids]


def split_ids(ids: Sequence[str], key: bytes, fraction: float) -> tuple[list[str], list[str]]:
    """(public, private), each in the order of `ids`."""
    mask = public_mask(ids, key, fraction)
    public = [i for i, is_public in zip(ids, mask, strict=True) if is_public]
    private = [i for i, is_public in zip(ids, mask, strict=True) if not is_public]
    return public, private


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def load_or_create_key(path: Path, competition: str = "") -> bytes:
    """The key stored at `path`, or a new one written there (mode 0600; a missing parent folder is created
    with mode 0700). An existing file is checked as `read_key` checks it."""
    path = Path(path)
    if path.exists():
        return read_key(path, competition)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = new_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return read_key(path, competition)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


def read_key(path: Path, competition: str = "") -> bytes:
    """The key stored at `path`: `CompetitionError` when it is missing, readable by the group or others, or
    not 64 hex digits."""
    path = Path(path)
    whose = f"competition `{competition}`" if competition else "the competition"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise CompetitionError(
            f"the secret key of {whose} is missing at {path}; it is created by `harness competition create`",
            "restore the key file from a backup (a new key would change every phase's public/private split)",
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CompetitionError(
            f"{path}: the secret key of {whose} is readable by others (mode {stat.S_IMODE(mode):04o})",
            f"chmod 600 {path}",
        )
    try:
        text = path.read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompetitionError(
            f"{path}: the secret key of {whose} is malformed ({exc})",
            f"the file must hold {2 * KEY_BYTES} hex digits; restore it from a backup (and `chmod 600 {path}`)",
        ) from exc
    if len(key) != KEY_BYTES:
        raise CompetitionError(
            f"{path}: the secret key of {whose} is malformed ({len(text)} hex digits, expected {2 * KEY_BYTES})",
            f"the file must hold {2 * KEY_BYTES} hex digits; restore it from a backup (and `chmod 600 {path}`)",
        )
    return key
