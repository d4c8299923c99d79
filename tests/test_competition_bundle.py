"""Competition bundles (`competition.toml`): the shipped example and the scaffold validate; every mistake is a
`CompetitionError` naming the file and the field, with a hint. The pure API only (the CLI has tests of its own)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from harness.competitions import (
    Bundle,
    PhaseSpec,
    Quota,
    bundle_digest,
    bundle_from_dict,
    init_bundle,
    load_bundle,
    scaffold_text,
)
from harness.errors import CompetitionError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "competitions" / "smallobj-sprint"


def _base() -> dict:
    return {
        "name": "sprint",
        "title": "Sprint",
        "phases": [
            {
                "name": "final",
                "track": "small-object",
                "dataset": "smallobj",
                "opens": "2026-01-01T00:00:00Z",
                "closes": "2099-01-01T00:00:00Z",
                "public_fraction": 0.5,
                "quota": {"per_day": 3, "per_phase": 20},
            }
        ],
    }


def _refused(data: dict, root: Path, field: str, fragment: str = "") -> CompetitionError:
    root.mkdir(parents=True, exist_ok=True)
    with pytest.raises(CompetitionError) as caught:
        bundle_from_dict(data, root)
    message = caught.value.message
    assert "competition.toml" in message and f": {field}: " in message, message
    assert fragment in str(caught.value), str(caught.value)
    assert caught.value.hint, message
    return caught.value


def _with(phase_changes: dict, top_changes: dict | None = None) -> dict:
    data = _base()
    data.update(top_changes or {})
    for key, value in phase_changes.items():
        if value is None:
            data["phases"][0].pop(key, None)
        else:
            data["phases"][0][key] = value
    return data


def _classification_folder(folder: Path) -> Path:
    from harness.datasets.classification_split import write_classification_split

    ids = [f"s{i}" for i in range(6)]
    images = [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(6)]
    write_classification_split(folder, ids, images, [0, 1, 2, 0, 1, 2], ["a", "b", "c"])
    return folder


# --- what validates -------------------------------------------------------------------------------------------


def test_the_shipped_example_validates():
    bundle = load_bundle(EXAMPLE)
    assert (bundle.name, bundle.title, len(bundle.phases)) == ("smallobj-sprint", "Small-object sprint", 1)
    phase = bundle.phase("final")
    assert phase == PhaseSpec(
        name="final",
        title="Final phase",
        track="small-object",
        dataset="smallobj",
        split=None,
        opens=datetime(2026, 1, 1),
        closes=datetime(2099, 1, 1),
        public_fraction=0.5,
        ranking="best",
        max_selected=None,
        profile="quick",
        hardware_class=None,
        baselines=("fasterrcnn_small", "fasterrcnn_default"),
        quota=Quota(per_day=3, per_phase=20),
    )
    assert bundle.card(phase).name == "small-object" and bundle.dataset_folder(phase) is None
    assert bundle.digest == bundle_digest(EXAMPLE) and len(bundle.digest) == 64


def test_the_scaffold_validates_and_init_refuses_to_overwrite(tmp_path):
    path = init_bundle(tmp_path / "my-cup")
    assert path == tmp_path / "my-cup" / "competition.toml" and path.read_text() == scaffold_text("my-cup")
    bundle = load_bundle(tmp_path / "my-cup")
    assert bundle.name == "my-cup" and bundle.phases[0].quota == Quota(3, 20)
    with pytest.raises(CompetitionError, match="already exists"):
        init_bundle(tmp_path / "my-cup", "other")
    assert load_bundle(init_bundle(tmp_path / "x", "named-cup")).name == "named-cup"
    with pytest.raises(CompetitionError, match="not a valid competition name"):
        init_bundle(tmp_path / "Bad Name")


def test_to_dict_is_json_and_reads_back(tmp_path):
    bundle = load_bundle(EXAMPLE)
    stored = json.loads(json.dumps(bundle.to_dict()))
    assert stored["phases"][0]["opens"] == "2026-01-01T00:00:00Z"
    assert bundle_from_dict(stored, EXAMPLE) == bundle
    assert bundle_from_dict(stored, EXAMPLE).to_dict() == stored


def test_a_phase_by_name_and_a_miss_names_the_phases():
    bundle = load_bundle(EXAMPLE)
    with pytest.raises(CompetitionError, match="final"):
        bundle.phase("finale")


def test_a_bundle_card_file_and_dataset_folder(tmp_path):
    (tmp_path / "cards").mkdir()
    shutil.copy(ROOT / "harness" / "tracks" / "cards" / "classification.toml", tmp_path / "cards" / "mine.toml")
    _classification_folder(tmp_path / "data" / "final")
    data = _with({"track": "cards/mine.toml", "dataset": "data/final", "ranking": "selected", "max_selected": 2})
    bundle = bundle_from_dict(data, tmp_path)
    phase = bundle.phases[0]
    assert bundle.card(phase).kind == "classification"
    assert bundle.dataset_folder(phase) == tmp_path / "data" / "final"
    assert (phase.ranking, phase.max_selected, phase.split) == ("selected", 2, None)


def test_datetimes_with_offsets_are_kept_as_naive_utc(tmp_path):
    data = _with({"opens": "2026-03-01T02:00:00+02:00", "closes": datetime.fromisoformat("2026-03-02T00:00:00-01:00")})
    phase = bundle_from_dict(data, tmp_path).phases[0]
    assert (phase.opens, phase.closes) == (datetime(2026, 3, 1), datetime(2026, 3, 2, 1))
    assert phase.to_dict()["closes"] == "2026-03-02T01:00:00Z"


# --- mistakes, each naming its field --------------------------------------------------------------------------


def test_unknown_track_suggests_the_nearest(tmp_path):
    error = _refused(_with({"track": "small-objekt"}), tmp_path, "phases[0].track", "unknown track")
    assert "small-object" in error.hint


def test_track_card_file_missing_or_invalid(tmp_path):
    _refused(_with({"track": "cards/none.toml"}), tmp_path, "phases[0].track", "not found")
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "bad.toml").write_text('name = "x"\n')
    _refused(_with({"track": "cards/bad.toml"}), tmp_path, "phases[0].track", "invalid track card")


def test_unknown_dataset_kind_mismatch_and_missing_split(tmp_path):
    error = _refused(_with({"dataset": "smallobjj"}), tmp_path, "phases[0].dataset", "unknown dataset")
    assert "smallobj" in error.hint
    _refused(_with({"dataset": "digits"}), tmp_path, "phases[0].dataset", "is for classification")
    _refused(_with({"split": "nope"}), tmp_path, "phases[0].split", "has no split `nope`")


def test_dataset_folder_missing_or_incomplete(tmp_path):
    cls = {"track": "classification"}
    _refused(_with({**cls, "dataset": "data/none"}), tmp_path, "phases[0].dataset", "not found")
    folder = _classification_folder(tmp_path / "data" / "final")
    _refused(_with({**cls, "dataset": "data/final", "split": "test"}), tmp_path, "phases[0].split", "registered")
    (folder / "hidden" / "labels.json").unlink()
    _refused(
        _with({**cls, "dataset": "data/final"}), tmp_path, "phases[0].dataset", "dataset folder missing its labels"
    )
    (folder / "inputs" / "s3.png").unlink()
    _refused(_with({**cls, "dataset": "data/final"}), tmp_path, "phases[0].dataset", "'s3.png'")
    (folder / "inputs" / "index.json").write_text('{"ids": ["a"], "files": []}')
    _refused(_with({**cls, "dataset": "data/final"}), tmp_path, "phases[0].dataset", "same")
    (folder / "inputs" / "index.json").unlink()
    _refused(_with({**cls, "dataset": "data/final"}), tmp_path, "phases[0].dataset", "inputs/index.json")


def test_paths_escaping_the_bundle_are_refused(tmp_path):
    root = tmp_path / "bundle"
    _classification_folder(tmp_path / "outside")
    cls = {"track": "classification"}
    _refused(_with({**cls, "dataset": "../outside"}), root, "phases[0].dataset", "outside the bundle")
    _refused(_with({**cls, "dataset": str(tmp_path / "outside")}), root, "phases[0].dataset", "outside the bundle")
    _refused(_with({"track": "/etc/card.toml"}), root, "phases[0].track", "outside the bundle")
    _refused(_with({"track": "cards/../../card.toml"}), root, "phases[0].track", "outside the bundle")


def test_close_before_open(tmp_path):
    data = _with({"opens": "2026-02-01T00:00:00Z", "closes": "2026-01-01T00:00:00Z"})
    _refused(data, tmp_path, "phases[0].closes", "is not after opens")
    _refused(_with({"closes": "2026-01-01T00:00:00Z"}), tmp_path, "phases[0].closes", "is not after opens")


def test_datetimes_without_a_time_zone(tmp_path):
    _refused(_with({"opens": "2026-01-01T00:00:00"}), tmp_path, "phases[0].opens", "no time zone")
    _refused(_with({"closes": datetime(2099, 1, 1)}), tmp_path, "phases[0].closes", "no time zone")
    _refused(_with({"opens": "soon"}), tmp_path, "phases[0].opens", "not an ISO 8601")
    _refused(_with({"opens": 5}), tmp_path, "phases[0].opens", "expected a date and time")


@pytest.mark.parametrize("fraction", [1.5, 0, 1, -0.1, float("nan")])
def test_fraction_outside_0_1(tmp_path, fraction):
    _refused(_with({"public_fraction": fraction}), tmp_path, "phases[0].public_fraction", "is outside (0, 1)")


@pytest.mark.parametrize("fraction", [True, "0.5"])
def test_fraction_not_a_number(tmp_path, fraction):
    _refused(_with({"public_fraction": fraction}), tmp_path, "phases[0].public_fraction", "expected a number")


@pytest.mark.parametrize(("quota", "field"), [({"per_day": -1}, "per_day"), ({"per_phase": 1.5}, "per_phase")])
def test_quota_negative_or_not_an_integer(tmp_path, quota, field):
    _refused(_with({"quota": quota}), tmp_path, f"phases[0].quota.{field}", "not an integer >= 0")


def test_quota_of_zero_or_absent_is_allowed(tmp_path):
    assert bundle_from_dict(_with({"quota": {"per_day": 0}}), tmp_path).phases[0].quota == Quota(0, None)
    assert bundle_from_dict(_with({"quota": None}), tmp_path).phases[0].quota == Quota(None, None)


def test_ranking_and_max_selected(tmp_path):
    _refused(_with({"ranking": "worst"}), tmp_path, "phases[0].ranking", "unknown ranking")
    _refused(_with({"ranking": "selected"}), tmp_path, "phases[0].max_selected", "missing")
    _refused(_with({"ranking": "selected", "max_selected": 0}), tmp_path, "phases[0].max_selected", ">= 1")
    _refused(_with({"ranking": "best", "max_selected": 2}), tmp_path, "phases[0].max_selected", "is given")
    assert bundle_from_dict(_with({"ranking": "last"}), tmp_path).phases[0].ranking == "last"


def test_unknown_profile(tmp_path):
    error = _refused(_with({"profile": "quik"}), tmp_path, "phases[0].profile", "unknown latency profile")
    assert "quick" in error.hint


def test_unknown_keys_name_the_key_and_the_allowed_ones(tmp_path):
    error = _refused(_with({}, {"titel": "x"}), tmp_path, "titel", "unknown key")
    assert "`title`" in error.hint and "description" in error.hint
    error = _refused(_with({"publik_fraction": 0.5}), tmp_path, "phases[0].publik_fraction", "unknown key")
    assert "public_fraction" in error.hint
    _refused(_with({"quota": {"per_week": 1}}), tmp_path, "phases[0].quota.per_week", "per_day")


def test_missing_fields_wrong_types_and_bad_names(tmp_path):
    _refused(_with({"track": None}), tmp_path, "phases[0].track", "missing")
    data = _base()
    del data["title"]
    _refused(data, tmp_path, "title", "missing")
    _refused(_with({}, {"title": 3}), tmp_path, "title", "expected a string")
    _refused(_with({"baselines": "mine"}), tmp_path, "phases[0].baselines", "array")
    _refused(_with({"quota": 3}), tmp_path, "phases[0].quota", "expected a table")
    _refused(_with({}, {"name": "Sprint!"}), tmp_path, "name", "not a valid name")
    _refused(_with({"name": "-final"}), tmp_path, "phases[0].name", "not a valid name")
    _refused(_with({}, {"phases": []}), tmp_path, "phases", "non-empty")
    _refused(_with({}, {"phases": ["final"]}), tmp_path, "phases[0]", "expected a table")


def test_duplicate_phase_names(tmp_path):
    data = _base()
    data["phases"].append(copy.deepcopy(data["phases"][0]))
    _refused(data, tmp_path, "phases[1].name", "named twice")


# --- the file itself ------------------------------------------------------------------------------------------


def test_missing_or_unparsable_file(tmp_path):
    with pytest.raises(CompetitionError, match="competition.toml: missing"):
        load_bundle(tmp_path)
    (tmp_path / "competition.toml").write_text('name = "sprint"\ntitle = \n')
    with pytest.raises(CompetitionError, match=r"not valid TOML .*line 2"):
        load_bundle(tmp_path)


def test_toml_datetimes(tmp_path):
    text = scaffold_text("sprint")
    (tmp_path / "competition.toml").write_text(
        text.replace("opens = 2026-01-01T00:00:00Z", "opens = 2026-01-01T00:00:00")
    )
    with pytest.raises(CompetitionError, match=r"phases\[0\]\.opens: .*no time zone"):
        load_bundle(tmp_path)
    (tmp_path / "competition.toml").write_text(text.replace("opens = 2026-01-01T00:00:00Z", "opens = 2026-01-01"))
    with pytest.raises(CompetitionError, match=r"phases\[0\]\.opens: is a date without a time"):
        load_bundle(tmp_path)
    (tmp_path / "competition.toml").write_text(
        text.replace("opens = 2026-01-01T00:00:00Z", "opens = 2026-01-01T01:00:00+01:00")
    )
    assert load_bundle(tmp_path).phases[0].opens == datetime(2026, 1, 1)


def test_a_digest_key_in_the_file_is_refused(tmp_path):
    (tmp_path / "competition.toml").write_text('digest = "x"\n' + scaffold_text("sprint"))
    with pytest.raises(CompetitionError, match="digest: unknown key"):
        load_bundle(tmp_path)


def test_the_digest_covers_the_files_skips_pycache_and_refuses_links(tmp_path):
    init_bundle(tmp_path, "sprint")
    first = bundle_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"x")
    assert bundle_digest(tmp_path) == first
    (tmp_path / "notes.md").write_text("rules")
    second = bundle_digest(tmp_path)
    assert second != first
    (tmp_path / "notes.md").write_text("rulez")
    assert bundle_digest(tmp_path) != second
    assert isinstance(load_bundle(tmp_path), Bundle)
    os.symlink(tmp_path / "notes.md", tmp_path / "link.md")
    with pytest.raises(CompetitionError, match="symbolic link"):
        bundle_digest(tmp_path)
