"""Limits on hostile inputs, through the real CLI on real files: a zip bomb, archive headers that lie, too many
members, endless lines, too many predictions per image, oversized JSON and results files, oversized submissions
(a sparse file) and submissions of too many files. Each is refused at once: exit 2, one error line, a short
stderr, little memory."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_submission, run_cli

HARNESS = Path(sys.executable).parent / "harness"
GIB = 1 << 30


# Started by a small Python process, so that the peak RSS that wait4 reports is the command's own: a child forked
# from this (large) test process counts the parent's pages until it execs.
SPAWN = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, int]:
    """The real `harness` console script: (its result, wall seconds, its own peak RSS in bytes, from wait4)."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", SPAWN, str(peak_file), str(HARNESS), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        elapsed = time.perf_counter() - started
        peak = int(peak_file.read_text())
    return result, elapsed, peak


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one error line (and its fix), no traceback, under 1 kB of stderr; returns the error line."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.encode()) < 1024, result.stderr[:2000]
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and all(line.startswith("  ") for line in lines[1:]), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def text_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gt")
    (folder / "gt_img_1.txt").write_text("0,0,10,0,10,10,0,10,word\n")
    (folder / "gt_img_2.txt").write_text("5,5,20,5,20,20,5,20,###\n")
    return folder


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 MB of zip holding one result file of 1 GiB of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    info = zipfile.ZipInfo("res_img_1.txt")
    info.compress_type = zipfile.ZIP_DEFLATED
    block = b"\0" * (1 << 24)
    with zipfile.ZipFile(path, "w", compresslevel=1) as archive, archive.open(info, "w", force_zip64=True) as member:
        for _ in range(GIB // len(block)):
            member.write(block)
    assert path.stat().st_size < 8 << 20
    return path


def score_text(gt: Path, predictions: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, int]:
    args = ("score", "--track", "text-detection", "--ground-truth", str(gt), "--predictions", str(predictions))
    return run_measured(*args, env=env)


def test_zip_bomb_is_refused_at_once_in_little_memory(harness_env, text_gt, bomb):
    result, elapsed, peak = score_text(text_gt, bomb, harness_env)
    line = assert_refused(result, "bomb.zip:res_img_1.txt", "64.0 MiB")
    assert "HARNESS_MAX_UNPACKED_MB" in result.stderr
    print(f"\nbomb refused in {elapsed:.2f} s, peak RSS {peak / 1e6:.0f} MB, stderr {len(result.stderr)} bytes: {line}")
    assert elapsed < 5 and peak < 500e6


def test_zip_bomb_under_a_raised_size_limit_stops_at_the_line_limit(harness_env, text_gt, bomb):
    """Even allowed to unpack it all, the reader streams: the endless first line is refused after 8 KiB."""
    result, elapsed, peak = score_text(text_gt, bomb, {**harness_env, "HARNESS_MAX_UNPACKED_MB": "4096"})
    line = assert_refused(result, "line 1: longer than 8,192 bytes, starting '\\x00")
    assert len(line) < 250 and elapsed < 5 and peak < 500e6


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_member_whose_header_understates_its_size_is_refused(harness_env, text_gt, tmp_path):
    data = b"0,0,10,0,10,10,0,10\n" * 50_000  # 1 MB
    raw = bytearray(_zip(tmp_path / "liar.zip", {"res_img_1.txt": data}).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = raw.index(signature)
        struct.pack_into("<I", raw, at + offset, 100)  # uncompressed size: 100 bytes
    (tmp_path / "liar.zip").write_bytes(bytes(raw))
    result, _, peak = score_text(text_gt, tmp_path / "liar.zip", harness_env)
    assert_refused(result, "liar.zip:res_img_1.txt: cannot be read from the archive")
    assert peak < 500e6


def test_bytes_beyond_the_declared_size_are_counted_as_they_stream():
    from harness.errors import PredictionError
    from harness.formats.limits import ByteBudget, counted_chunks

    budget = ByteBudget("the archive's members", 1 << 20, "HARNESS_MAX_UNPACKED_MB", PredictionError)
    stream = io.BytesIO(b"x" * (3 << 20))
    with pytest.raises(PredictionError, match="hold more than 1.0 MiB, unpacked"):
        for _ in counted_chunks(stream, 10, budget, "liar.zip:res_img_1.txt"):  # declares 10 bytes
            pass
    assert stream.tell() <= (1 << 20) + (1 << 16)


def test_too_many_members_are_refused_before_the_directory_is_read(harness_env, text_gt, tmp_path):
    members = {f"res_img_{i}.txt": b"" for i in range(1, 6)}
    result, _, _ = score_text(
        text_gt, _zip(tmp_path / "many.zip", members), {**harness_env, "HARNESS_MAX_ARCHIVE_MEMBERS": "3"}
    )
    assert_refused(result, "many.zip: holds 5 entries, over the limit of 3")


def test_a_long_line_in_a_folder_is_refused_quoting_80_characters(harness_env, text_gt, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "res_img_1.txt").write_text("1," * 200_000 + "\n")
    result, _, _ = score_text(text_gt, results, harness_env)
    line = assert_refused(result, "res_img_1.txt, line 1: longer than 8,192 bytes, starting '1,1,1,")
    assert len(line.split("starting ", 1)[1]) <= 80


def test_a_malformed_line_is_quoted_at_most_80_characters(harness_env, text_gt, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "res_img_1.txt").write_text("x" * 5000 + "\n")
    result, _, _ = score_text(text_gt, results, harness_env)
    line = assert_refused(result, "res_img_1.txt, line 1: expected")
    assert len(line.split("found ", 1)[1]) <= 80


def test_too_many_predictions_for_one_image_are_refused(harness_env, text_gt, tmp_path):
    results = _zip(tmp_path / "crowded.zip", {"res_img_1.txt": b"0,0,10,0,10,10,0,10\n" * 11})
    result, _, _ = score_text(text_gt, results, {**harness_env, "HARNESS_MAX_PREDICTIONS_PER_IMAGE": "10"})
    assert_refused(result, "crowded.zip:res_img_1.txt, line 11: more than 10 detections for one image")


def test_a_ground_truth_bomb_is_refused_too(harness_env, bomb, tmp_path):
    gt = tmp_path / "gt.zip"
    gt.write_bytes(bomb.read_bytes().replace(b"res_img_1.txt", b"gt_img_11.txt"))
    results = _zip(tmp_path / "results.zip", {})
    result, elapsed, _ = score_text(gt, results, harness_env)
    assert_refused(result, "gt.zip:gt_img_11.txt", "64.0 MiB")
    assert elapsed < 5


COCO_GT = {
    "images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.png"}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "thing"}],
}


def score_coco(gt: Path, predictions: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, int]:
    args = ("score", "--track", "small-object", "--ground-truth", str(gt), "--predictions", str(predictions))
    return run_measured(*args, env=env)


def test_a_json_file_over_the_limit_is_refused_before_it_is_parsed(harness_env, tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(COCO_GT))
    predictions = tmp_path / "huge.json"
    with predictions.open("wb") as stream:  # 2 GiB, sparse: parsing it would take minutes and gigabytes
        stream.truncate(2 * GIB)
    result, elapsed, peak = score_coco(gt, predictions, harness_env)
    assert_refused(result, "huge.json: the JSON file is 2,048.0 MiB, over the limit of 512.0 MiB")
    assert "HARNESS_MAX_JSON_MB" in result.stderr and elapsed < 5 and peak < 500e6


def test_too_many_coco_detections_for_one_image_are_refused(harness_env, tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(COCO_GT))
    detection = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}
    predictions = tmp_path / "results.json"
    predictions.write_text(json.dumps([detection] * 11))
    result, _, _ = score_coco(gt, predictions, {**harness_env, "HARNESS_MAX_PREDICTIONS_PER_IMAGE": "10"})
    assert_refused(result, "results.json: image_id 1 has 11 detections, over the limit of 10 per image")


def test_a_gate_results_file_over_the_limit_is_refused(harness_env, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"harness_version": "x", "runs": [], "pad": "x" * (2 << 20)}))
    result, _, _ = run_measured(
        "gate", "--baseline", str(results), "--candidate", str(results), env={**harness_env, "HARNESS_MAX_JSON_MB": "1"}
    )
    assert_refused(result, "results.json: the results file is 2.0 MiB, over the limit of 1.0 MiB")


def test_a_sparse_2gb_submission_is_refused_without_being_read(harness_env, tmp_path):
    folder = make_submission(tmp_path, "sparse")
    with (folder / "sparse_pkg" / "weights.bin").open("wb") as stream:
        stream.truncate(2 * GIB)  # no block written: reading it whole would take seconds and 2 GB
    result, elapsed, peak = run_measured("submit", str(folder), env=harness_env)
    line = assert_refused(result, "its files hold more than 512 MiB (reached at sparse_pkg/weights.bin, 2,048.0 MiB)")
    print(f"\nsparse submission refused in {elapsed:.2f} s, peak RSS {peak / 1e6:.0f} MB: {line}")
    assert elapsed < 5 and peak < 500e6
    assert not (Path(harness_env["HARNESS_HOME"]) / "submissions").exists() or not any(
        (Path(harness_env["HARNESS_HOME"]) / "submissions").glob("*/sparse_pkg")
    )


def test_a_submission_of_too_many_files_is_refused(harness_env, tmp_path):
    folder = make_submission(tmp_path, "manyfiles")
    for index in range(5):
        (folder / f"data_{index}.txt").write_text("x")
    result = run_cli("check", str(folder), env={**harness_env, "HARNESS_MAX_SUBMISSION_FILES": "4"})
    assert_refused(result, "manyfiles: holds more than 4 files")


def test_a_submission_file_that_is_not_a_regular_file_is_refused(harness_env, tmp_path):
    folder = make_submission(tmp_path, "devzero")
    (folder / "devzero_pkg" / "weights.bin").symlink_to("/dev/zero")
    result = run_cli("check", str(folder), env=harness_env)
    assert_refused(result, "weights.bin: not a regular file")


def test_a_malformed_limit_setting_names_its_variable(harness_env, text_gt, tmp_path):
    result = run_cli(
        "score", "--track", "text-detection", "--ground-truth", str(text_gt), "--predictions", str(tmp_path),
        env={**harness_env, "HARNESS_MAX_LINE_BYTES": "lots"},
    )  # fmt: skip
    assert_refused(result, "HARNESS_MAX_LINE_BYTES='lots' is not a number")
