"""The benchmark tracks: versioned cards (data only; scoring belongs to the card's task kind).

Cards are found, in this order, as the built-in files `harness/tracks/cards/*.toml`, the `*.toml` files of
the folders on `HARNESS_TRACKS_PATH`, and the entry points of the group `harness.tracks` (a target that is a
`TrackCard`, a path to a card file, or a function returning either). A track name registered twice is an
error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plugins import BUILTIN, Entry, Registry, load_target
from harness.tracks.card import Rules, TrackCard, card_from_dict, load_card

CARDS_DIR = Path(__file__).parent / "cards"
GROUP = "harness.tracks"


def _card_files() -> list[Entry]:
    from harness.config import settings

    entries = []
    for folder, source in [(CARDS_DIR, BUILTIN)] + [(p, str(p)) for p in settings().tracks_path]:
        if not folder.is_dir():
            raise HarnessError(f"HARNESS_TRACKS_PATH names {folder}, which is not a folder", "fix HARNESS_TRACKS_PATH")
        for path in sorted(folder.glob("*.toml")):
            entries.append(Entry(load_card(path).name, str(path), source))
    return entries


def _load(entry: Entry, _site: Path | None) -> TrackCard:
    if entry.target.endswith(".toml") and ":" not in entry.target:
        card = load_card(Path(entry.target))
    else:
        card = _as_card(load_target(entry.target, where=f"track `{entry.name}` (entry point of `{entry.source}`)"))
    if card.name != entry.name:
        raise HarnessError(
            f"track `{entry.name}` of `{entry.source}` holds a card named `{card.name}`",
            "make the entry point's name and the card's `name` the same",
        )
    from harness.kinds import KINDS

    if card.kind not in KINDS.names():
        raise KINDS.unknown(card.kind, KINDS.names())
    return card


def _as_card(obj: Any) -> TrackCard:
    if callable(obj) and not isinstance(obj, TrackCard):
        obj = obj()
    if isinstance(obj, TrackCard):
        return obj
    if isinstance(obj, str | Path):
        return load_card(Path(obj))
    if isinstance(obj, dict):
        return card_from_dict(obj, "an entry point's card")
    raise HarnessError(f"a track entry point gave a {type(obj).__name__}, expected a TrackCard or a card file")


TRACKS: Registry[TrackCard] = Registry(
    "track", GROUP, loader=_load, builtins=_card_files, listing="see `harness tracks`", cache=False
)


def get_card(name: str) -> TrackCard:
    return TRACKS.get(name)


def all_cards() -> dict[str, TrackCard]:
    return TRACKS.all()


__all__ = ["CARDS_DIR", "TRACKS", "Rules", "TrackCard", "all_cards", "get_card", "load_card"]
