"""A competition bundle: an organiser's folder holding `competition.toml`, and optionally track cards and
dataset folders of its own, read and checked here (pure: no store, no evaluation).

`competition.toml`:

    name = "smallobj-sprint"          # [a-z0-9][a-z0-9-]{1,62}
    title = "Small-object sprint"
    description = "..."               # optional

    [[phases]]                        # one or more
    name = "final"                    # same name rule; unique within the bundle
    title = "Final phase"             # optional (default: the name)
    track = "small-object"            # a registered track name, or a card file in the bundle
                                      # ("cards/mine.toml": relative, inside the bundle)
    dataset = "smallobj"              # a registered dataset name, or a folder in the bundle
                                      # ("data/final": relative, inside the bundle)
    split = "test"                    # optional, registered datasets only (default: the track card's split)
    opens = 2026-01-01T00:00:00Z      # TOML datetimes with an offset, or ISO 8601 strings with Z or an offset;
    closes = 2099-01-01T00:00:00Z     # kept as naive UTC; closes after opens
    public_fraction = 0.5             # strictly between 0 and 1: the share of the hidden test set scored publicly
    ranking = "best"                  # best | last | selected (default: best)
    max_selected = 2                  # required (>= 1) iff ranking = "selected"; refused otherwise
    profile = "quick"                 # optional: the latency profile that ranks (default: the card's)
    hardware_class = ""               # optional: only runs on this hardware class rank ("" or absent: any)
    baselines = ["fasterrcnn_small"]  # optional: stored (organiser) submissions shown as baselines

    [phases.quota]                    # optional
    per_day = 3                       # per participant per UTC day: an integer >= 0, or absent (no limit)
    per_phase = 20                    # per participant in the phase: an integer >= 0, or absent (no limit)

A dataset folder in the bundle has the harness's own split layout: `inputs/index.json` (`{"ids": [...],
"files": [...]}`, same length), the image files it lists in `inputs/`, and `hidden/` holding the ground truth
of the track's kind: its `truth_files` (classification `labels.json`, detection `instances.json` in COCO form,
text one `gt_<id>.txt` per image).

Every mistake is a `CompetitionError` naming the file and the field (`…/competition.toml: phases[0].
public_fraction: 1.5 is outside (0, 1)`) with a hint; checking stops at the first.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import CompetitionError, HarnessError
from harness.plugins import suggest
from harness.tracks.card import TrackCard

FILE_NAME = "competition.toml"
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
RANKINGS = ("best", "last", "selected")
TOP_KEYS = ("name", "title", "description", "phases")
PHASE_KEYS = (
    "name",
    "title",
    "track",
    "dataset",
    "split",
    "opens",
    "closes",
    "public_fraction",
    "ranking",
    "max_selected",
    "profile",
    "hardware_class",
    "baselines",
    "quota",
)
QUOTA_KEYS = ("per_day", "per_phase")
IGNORED_DIRS = ("__pycache__",)


@dataclass(frozen=True)
class Quota:
    per_day: int | None = None  # submissions per participant per UTC day; None: no limit
    per_phase: int | None = None  # submissions per participant in the phase; None: no limit


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    title: str
    track: str  # a registered track name, or a card file relative to the bundle
    dataset: str  # a registered dataset name, or a folder relative to the bundle
    split: str | None  # registered datasets: the split given (None: the card's); bundle folders: None
    opens: datetime  # naive UTC
    closes: datetime  # naive UTC
    public_fraction: float
    ranking: str  # best | last | selected
    max_selected: int | None  # ranking "selected" only
    profile: str | None  # None: the card's
    hardware_class: str | None  # None: any
    baselines: tuple[str, ...]
    quota: Quota

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `bundle_from_dict` reads it back."""
        return {
            "name": self.name,
            "title": self.title,
            "track": self.track,
            "dataset": self.dataset,
            "split": self.split,
            "opens": _iso(self.opens),
            "closes": _iso(self.closes),
            "public_fraction": self.public_fraction,
            "ranking": self.ranking,
            "max_selected": self.max_selected,
            "profile": self.profile,
            "hardware_class": self.hardware_class,
            "baselines": list(self.baselines),
            "quota": {"per_day": self.quota.per_day, "per_phase": self.quota.per_phase},
        }


@dataclass(frozen=True)
class Bundle:
    root: Path
    name: str
    title: str
    description: str
    phases: tuple[PhaseSpec, ...]
    digest: str  # bundle_digest(root)

    def phase(self, name: str) -> PhaseSpec:
        for phase in self.phases:
            if phase.name == name:
                return phase
        known = [p.name for p in self.phases]
        raise CompetitionError(
            f"competition `{self.name}` has no phase `{name}`",
            suggest(name, known, f"its phases: {', '.join(known)}"),
        )

    def card(self, phase: PhaseSpec) -> TrackCard:
        """The phase's track card: a registered one, or the bundle's card file."""
        if _is_path(phase.track):
            from harness.tracks.card import load_card

            return load_card(self.root / phase.track)
        from harness.tracks import get_card

        return get_card(phase.track)

    def dataset_folder(self, phase: PhaseSpec) -> Path | None:
        """The bundle's split folder of the phase, or None for a registered dataset."""
        return self.root / phase.dataset if _is_path(phase.dataset) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `bundle_from_dict(d, root)` reads it back (its `digest` is taken as the bundle's)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "phases": [phase.to_dict() for phase in self.phases],
            "digest": self.digest,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def _is_path(value: str) -> bool:
    """A track or dataset given as a file or folder of the bundle (rather than a registered name)."""
    return "/" in value or "\\" in value or value.endswith(".toml") or value.startswith(".")


class _Checker:
    """Raises `CompetitionError`s that name the file and the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str, hint: str | None = None) -> CompetitionError:
        return CompetitionError(f"{self.source}: {field}: {problem}", hint)

    def keys(self, table: Any, allowed: tuple[str, ...], where: str, required: tuple[str, ...]) -> dict[str, Any]:
        prefix = f"{where}." if where else ""
        if not isinstance(table, dict):
            raise self.fail(
                where or "(top level)", f"is {_a(table)}, expected a table", "write it as a [table] of keys"
            )
        for key in table:
            if key not in allowed:
                near = suggest(str(key), allowed, "")
                raise self.fail(
                    f"{prefix}{key}",
                    "unknown key",
                    (f"{near} " if near else "") + f"allowed keys: {', '.join(allowed)}",
                )
        for key in required:
            if table.get(key) is None:
                raise self.fail(f"{prefix}{key}", "missing (required)", f"add `{key} = …` to {where or 'the file'}")
        return table

    def string(self, table: dict, key: str, where: str, default: str | None = None) -> str | None:
        value = table.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"{where}{key}", f"is {_a(value)}, expected a string", f'write it in quotes: {key} = "…"')
        return value

    def name(self, table: dict, key: str, where: str) -> str:
        value = self.string(table, key, where) or ""
        if not NAME_RULE.fullmatch(value):
            raise self.fail(
                f"{where}{key}",
                f"{value!r} is not a valid name",
                "2 to 63 characters: lower-case letters, digits and `-`, starting with a letter or digit",
            )
        return value

    def moment(self, table: dict, key: str, where: str) -> datetime:
        value = table.get(key)
        field = f"{where}{key}"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError as exc:
                raise self.fail(field, f"{value!r} is not an ISO 8601 date and time", _TIME_HINT) from exc
        if not isinstance(value, datetime):
            raise self.fail(field, f"is {_a(value)}, expected a date and time with a time zone", _TIME_HINT)
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.fail(field, f"{value.isoformat()} has no time zone", _TIME_HINT)
        return value.astimezone(UTC).replace(tzinfo=None)

    def count(self, table: dict, key: str, where: str, least: int) -> int | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise self.fail(f"{where}{key}", f"{value!r} is not an integer >= {least}", f"give an integer >= {least}")
        return value


def _a(value: Any) -> str:
    """`value`'s type in TOML's words."""
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date without a time"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "a table" if isinstance(value, dict) else f"a {type(value).__name__}")


_TIME_HINT = "write e.g. 2026-01-01T00:00:00Z (a TOML datetime with Z or an offset such as +02:00)"


def load_bundle(root: Path) -> Bundle:
    """Read and check the bundle in folder `root` (or the folder of the `competition.toml` given)."""
    root = Path(root)
    if root.is_file() and root.name == FILE_NAME:
        root = root.parent
    path = root / FILE_NAME
    if not root.is_dir():
        raise CompetitionError(f"{root}: no such folder", "give the folder of the competition bundle")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CompetitionError(
            f"{path}: missing",
            "start from `harness competition init DIR`, or copy competitions/smallobj-sprint/competition.toml",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CompetitionError(f"{path}: unreadable ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CompetitionError(f"{path}: not valid TOML ({exc})", "fix the syntax at that line") from exc
    if "digest" in data:  # only a stored bundle (Bundle.to_dict) carries its digest
        raise _Checker(str(path)).fail("digest", "unknown key", f"allowed keys: {', '.join(TOP_KEYS)}")
    return bundle_from_dict(data, root)


def bundle_from_dict(data: dict[str, Any], root: Path) -> Bundle:
    """A checked bundle from the table of its `competition.toml` (or from `Bundle.to_dict()`, whose `digest`
    is then kept), with the cards and dataset folders it names read from `root`."""
    root = Path(root)
    check = _Checker(str(root / FILE_NAME))
    data = dict(data)
    digest = data.pop("digest", None)
    check.keys(data, TOP_KEYS, "", ("name", "title", "phases"))
    name = check.name(data, "name", "")
    title = check.string(data, "title", "") or ""
    description = check.string(data, "description", "", "") or ""
    phases_data = data["phases"]
    if not isinstance(phases_data, list) or not phases_data:
        raise check.fail("phases", "must be a non-empty array of tables", "add one or more [[phases]] tables")
    phases: list[PhaseSpec] = []
    for i, table in enumerate(phases_data):
        phase = _phase(check, table, f"phases[{i}]", root)
        if any(p.name == phase.name for p in phases):
            raise check.fail(
                f"phases[{i}].name", f"phase `{phase.name}` is named twice", "give each phase its own name"
            )
        phases.append(phase)
    if not isinstance(digest, str) or not digest:
        digest = bundle_digest(root)
    return Bundle(root, name, title, description, tuple(phases), digest)


def _phase(check: _Checker, table: Any, where: str, root: Path) -> PhaseSpec:
    required = ("name", "track", "dataset", "opens", "closes", "public_fraction")
    check.keys(table, PHASE_KEYS, where, required)
    at = f"{where}."
    name = check.name(table, "name", at)
    opens, closes = check.moment(table, "opens", at), check.moment(table, "closes", at)
    if closes <= opens:
        raise check.fail(
            f"{at}closes", f"{_iso(closes)} is not after opens ({_iso(opens)})", "make the phase close after it opens"
        )
    fraction = table["public_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise check.fail(f"{at}public_fraction", f"is {_a(fraction)}, expected a number in (0, 1)", "e.g. 0.5")
    if not (0 < fraction < 1) or math.isnan(fraction):
        raise check.fail(
            f"{at}public_fraction",
            f"{fraction} is outside (0, 1)",
            "the public share of the test set lies strictly between 0 and 1, e.g. 0.5",
        )
    ranking = check.string(table, "ranking", at, "best")
    if ranking not in RANKINGS:
        raise check.fail(f"{at}ranking", f"unknown ranking {ranking!r}", f"use one of: {', '.join(RANKINGS)}")
    max_selected = check.count(table, "max_selected", at, 1)
    if ranking == "selected" and max_selected is None:
        raise check.fail(f"{at}max_selected", "missing: ranking `selected` needs it", "add e.g. `max_selected = 2`")
    if ranking != "selected" and max_selected is not None:
        raise check.fail(
            f"{at}max_selected", f"is given, but ranking is `{ranking}`", 'remove it, or set ranking = "selected"'
        )
    card = _track(check, table, at, root)
    split = _dataset(check, table, at, root, card)
    return PhaseSpec(
        name=name,
        title=check.string(table, "title", at, name) or name,
        track=table["track"],
        dataset=table["dataset"],
        split=split,
        opens=opens,
        closes=closes,
        public_fraction=float(fraction),
        ranking=ranking,
        max_selected=max_selected,
        profile=_profile(check, table, at),
        hardware_class=check.string(table, "hardware_class", at) or None,
        baselines=_baselines(check, table, at),
        quota=_quota(check, table.get("quota"), f"{at}quota"),
    )


def _profile(check: _Checker, table: dict, at: str) -> str | None:
    from harness.measure.latency import PROFILES

    profile = check.string(table, "profile", at)
    if profile is not None and profile not in PROFILES:
        raise check.fail(
            f"{at}profile",
            f"unknown latency profile {profile!r}",
            suggest(profile, PROFILES, f"use one of: {', '.join(PROFILES)}"),
        )
    return profile


def _baselines(check: _Checker, table: dict, at: str) -> tuple[str, ...]:
    value = table.get("baselines")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise check.fail(f"{at}baselines", "must be an array of submission names", 'e.g. baselines = ["mine"]')
    if len(set(value)) != len(value):
        raise check.fail(f"{at}baselines", "names a submission twice", "list each baseline once")
    return tuple(value)


def _quota(check: _Checker, table: Any, where: str) -> Quota:
    if table is None:
        return Quota()
    check.keys(table, QUOTA_KEYS, where, ())
    return Quota(check.count(table, "per_day", f"{where}.", 0), check.count(table, "per_phase", f"{where}.", 0))


def _inside(check: _Checker, field: str, value: str, root: Path) -> Path:
    """`value` as a path inside the bundle; refuses an absolute one, `..`, and a link leading out."""
    parts = PurePosixPath(value.replace("\\", "/"))
    if parts.is_absolute() or value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", value) or ".." in parts.parts:
        raise check.fail(
            field, f"{value!r} leads outside the bundle", "give a path relative to the bundle folder, without `..`"
        )
    path = root / parts
    if not path.resolve().is_relative_to(root.resolve()):
        raise check.fail(
            field, f"{value!r} leads outside the bundle (through a link)", "copy the files into the bundle"
        )
    return path


def _track(check: _Checker, table: dict, at: str, root: Path) -> TrackCard:
    from harness.kinds import KINDS, get_kind

    track = check.string(table, "track", at) or ""
    field = f"{at}track"
    if _is_path(track):
        path = _inside(check, field, track, root)
        if not path.is_file():
            raise check.fail(field, f"card file {track!r} not found in the bundle", f"put the card at {path}")
        from harness.tracks.card import load_card

        try:
            card = load_card(path)
        except HarnessError as exc:
            raise check.fail(field, f"invalid track card: {exc.message}", exc.hint) from exc
        if card.kind not in KINDS.names():
            raise check.fail(field, f"the card's kind `{card.kind}` is unknown", f"kinds: {', '.join(KINDS.names())}")
    else:
        from harness.tracks import TRACKS

        known = TRACKS.names()
        if track not in known:
            raise check.fail(field, f"unknown track `{track}`", suggest(track, known, f"tracks: {', '.join(known)}"))
        try:
            card = TRACKS.get(track)
        except HarnessError as exc:
            raise check.fail(field, f"track `{track}` cannot be loaded: {exc.message}", exc.hint) from exc
    if not get_kind(card.kind).truth_files:
        raise check.fail(
            field,
            f"task kind `{card.kind}` cannot split its ground truth into public and private parts",
            "use a track of a kind that implements `subset_truth` (classification, detection, text)",
        )
    return card


def _dataset(check: _Checker, table: dict, at: str, root: Path, card: TrackCard) -> str | None:
    """Check the phase's dataset against its card; the split given (registered datasets only)."""
    dataset = check.string(table, "dataset", at) or ""
    split = check.string(table, "split", at)
    field = f"{at}dataset"
    if _is_path(dataset):
        if split is not None:
            raise check.fail(f"{at}split", "applies to registered datasets only", "remove it: the folder is the split")
        _check_folder(check, field, _inside(check, field, dataset, root), card)
        return None
    from harness.datasets import DATASETS

    known = DATASETS.names()
    if dataset not in known:
        raise check.fail(
            field, f"unknown dataset `{dataset}`", suggest(dataset, known, f"datasets: {', '.join(known)}")
        )
    spec = DATASETS.get(dataset)
    if spec.kind != card.kind:
        raise check.fail(
            field,
            f"dataset `{dataset}` is for {spec.kind}, the track `{card.name}` is {card.kind}",
            "pick a dataset of the track's kind",
        )
    if (split or card.split) not in spec.splits:
        raise check.fail(
            f"{at}split" if split else field,
            f"dataset `{dataset}` has no split `{split or card.split}`",
            f"its splits: {', '.join(spec.splits)}",
        )
    return split


def _check_folder(check: _Checker, field: str, folder: Path, card: TrackCard) -> None:
    """A bundle's split folder: inputs/index.json, the images it lists, and the kind's ground truth in hidden/."""
    import json

    from harness.kinds import get_kind

    if not folder.is_dir():
        raise check.fail(field, f"dataset folder {folder} not found", "put the split folder (inputs/, hidden/) there")
    index_path = folder / "inputs" / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError as exc:
        raise check.fail(field, f"dataset folder missing inputs/index.json ({index_path})", _LAYOUT) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise check.fail(field, f"{index_path} is not readable JSON ({exc})", _LAYOUT) from exc
    ids, files = (index.get("ids"), index.get("files")) if isinstance(index, dict) else (None, None)
    if not isinstance(ids, list) or not isinstance(files, list) or len(ids) != len(files) or not ids:
        raise check.fail(field, f"{index_path}: `ids` and `files` must be lists of the same, non-zero length", _LAYOUT)
    if len(set(map(str, ids))) != len(ids):
        raise check.fail(field, f"{index_path}: an id is listed twice", "give each image its own id")
    for name in files:
        path = folder / "inputs" / str(name)
        if not isinstance(name, str) or ".." in PurePosixPath(name).parts or not path.is_file():
            raise check.fail(field, f"dataset folder lacks the image {name!r} that {index_path} lists", _LAYOUT)
    kind = get_kind(card.kind)
    hidden = folder / "hidden"
    missing = [pattern for pattern in kind.truth_files if not any(p.is_file() for p in hidden.glob(pattern))]
    if missing:
        raise check.fail(
            field,
            f"dataset folder missing its labels: hidden/ has no {' or '.join(missing)} (the {kind.name} ground truth)",
            _LAYOUT,
        )


_LAYOUT = (
    'a dataset folder holds inputs/index.json ({"ids": [...], "files": [...]}), the images in inputs/, and '
    "the ground truth in hidden/ (classification labels.json, detection instances.json, text gt_<id>.txt)"
)


def bundle_digest(root: Path) -> str:
    """sha256 over the bundle's files: per file (sorted by relative path) its path, size and bytes; only
    `__pycache__` folders are skipped. A symbolic link anywhere is a `CompetitionError`."""
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                raise CompetitionError(
                    f"{path}: a symbolic link in the competition bundle", "copy the file or folder into the bundle"
                )
        found.extend((Path(folder, name).relative_to(root).as_posix(), Path(folder, name)) for name in files)
    digest = hashlib.sha256()
    for relative, path in sorted(found):
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def scaffold_text(name: str) -> str:
    """A commented `competition.toml` for competition `name` that validates as it is."""
    if not NAME_RULE.fullmatch(name):
        raise CompetitionError(
            f"{name!r} is not a valid competition name",
            "2 to 63 characters: lower-case letters, digits and `-`, starting with a letter or digit",
        )
    return _SCAFFOLD.replace("{name}", name)


def init_bundle(root: Path, name: str | None = None) -> Path:
    """Write `root/competition.toml` from the scaffold (competition name: `name`, else the folder's name);
    refuses to overwrite one. Returns the file."""
    root = Path(root)
    path = root / FILE_NAME
    text = scaffold_text(name or root.resolve().name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as fh:
            fh.write(text)
    except FileExistsError as exc:
        raise CompetitionError(f"{path}: already exists", "edit it, or remove it to start again") from exc
    return path


_SCAFFOLD = """\
# A competition: one or more phases, each on a track and a dataset, open between two moments.
# Check it with `harness competition validate DIR`. Every field is explained below; optional ones are
# shown commented out with their default.

name = "{name}"                 # 2-63 characters: a-z, 0-9 and '-', starting with a letter or digit
title = "{name}"                # shown on the board
description = "What the competition is about, its rules and prizes."

[[phases]]                      # repeat [[phases]] for more phases (each with its own name)
name = "final"                  # same rule as the competition's name; unique within the bundle
title = "Final phase"           # optional (default: the name)

# The track: a registered one (`harness tracks`), or a card file in this folder, e.g. "cards/mine.toml".
track = "small-object"
# The dataset: a registered one (`harness datasets list`) of the track's kind, or a split folder in this
# folder, e.g. "data/final" (inputs/index.json, the images in inputs/, the ground truth in hidden/).
dataset = "smallobj"
# split = "test"                # registered datasets only (default: the track card's split)

# When submissions are taken: TOML datetimes with a time zone (Z is UTC), closes after opens.
opens = 2026-01-01T00:00:00Z
closes = 2099-01-01T00:00:00Z

# The share of the hidden test set scored publicly while the phase is open (strictly between 0 and 1);
# the rest (private) is revealed after it closes and decides the final standings.
public_fraction = 0.5

# Which of a participant's runs stands: "best", "last", or "selected" (the participant picks up to
# max_selected of them; max_selected is required for "selected" and refused otherwise).
ranking = "best"
# max_selected = 2

# profile = "quick"             # the latency profile that ranks (default: the track card's)
# hardware_class = ""           # only runs on this hardware class rank ("" or absent: any)
# baselines = ["fasterrcnn_small"]   # stored (organiser) submissions shown as baselines

[phases.quota]                  # submissions per participant; leave a line out for no limit
per_day = 3                     # per UTC day (an integer >= 0)
per_phase = 20                  # in the whole phase (an integer >= 0)
"""
