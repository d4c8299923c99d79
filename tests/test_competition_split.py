"""The keyed public/private split of a competition phase's test set, and the organiser's secret key file."""

from __future__ import annotations

import os
import stat

import pytest

from harness.competitions.split import load_or_create_key, new_key, public_mask, read_key, split_ids
from harness.errors import CompetitionError

IDS = [f"img_{i}" for i in range(1000)]
KEY = bytes(range(32))


def test_the_split_is_deterministic_for_a_key():
    assert public_mask(IDS, KEY, 0.5) == public_mask(IDS, KEY, 0.5)
    assert split_ids(IDS, KEY, 0.5) == split_ids(list(IDS), bytes(KEY), 0.5)


def test_the_split_does_not_depend_on_the_order_of_the_ids():
    mask = dict(zip(IDS, public_mask(IDS, KEY, 0.3), strict=True))
    shuffled = IDS[::-1]
    assert public_mask(shuffled, KEY, 0.3) == [mask[i] for i in shuffled]


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9, 0.123])
@pytest.mark.parametrize("seed", range(5))
def test_the_public_share_is_the_fraction_for_any_key(fraction, seed):
    """The public part is the round(fraction * n) ids of lowest keyed rank: within ±2 % on 1,000 ids for every
    key (exact to one id), not only on average over keys."""
    key = new_key() if seed else KEY
    share = sum(public_mask(IDS, key, fraction)) / len(IDS)
    assert abs(share - fraction) <= 0.0005 + 1e-12
    assert abs(share - fraction) <= 0.02


def test_another_key_gives_another_split():
    assert split_ids(IDS, KEY, 0.5) != split_ids(IDS, new_key(), 0.5)


def test_the_parts_are_disjoint_cover_every_id_and_keep_its_order():
    public, private = split_ids(IDS, KEY, 0.5)
    assert not set(public) & set(private)
    assert sorted(public + private) == sorted(IDS)
    assert public == [i for i in IDS if i in set(public)] and private == [i for i in IDS if i in set(private)]


def test_the_public_part_is_the_lowest_hmac_sha256_ranks():
    import hashlib
    import hmac

    def rank(i: str) -> int:
        return int.from_bytes(hmac.new(KEY, i.encode(), hashlib.sha256).digest()[:8], "big")

    public, _ = split_ids(IDS, KEY, 0.25)
    assert sorted(public) == sorted(sorted(IDS, key=rank)[:250])


def test_a_key_file_is_created_private_and_read_back(tmp_path):
    path = tmp_path / "keys" / "comp.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_key(path) == key == read_key(path)
    assert path.read_text().strip() == key.hex()


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "comp.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    for reader in (read_key, load_or_create_key):
        with pytest.raises(CompetitionError) as caught:
            reader(path)
        assert str(path) in str(caught.value) and f"chmod 600 {path}" in caught.value.hint


def test_a_malformed_or_missing_key_file_is_refused(tmp_path):
    path = tmp_path / "comp.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not hex\n")
    os.close(fd)
    with pytest.raises(CompetitionError, match="malformed"):
        read_key(path)
    path.write_text("ab" * 8)
    with pytest.raises(CompetitionError, match="malformed"):
        read_key(path)
    with pytest.raises(CompetitionError, match="missing at") as caught:
        read_key(tmp_path / "other.key", "sprint")
    assert "`sprint`" in str(caught.value) and "harness competition create" in str(caught.value)
