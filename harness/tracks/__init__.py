"""The benchmark tracks: versioned cards (data) and one scoring module per kind of task."""

from harness.tracks.base import TrackCard, all_cards, get_card, track_module

__all__ = ["TrackCard", "all_cards", "get_card", "track_module"]
