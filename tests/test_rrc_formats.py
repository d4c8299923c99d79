"""RRC text-detection files: ground-truth and result readers, the results writer, and `score_text`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.contract import TextPolygons
from harness.errors import DatasetError, PredictionError
from harness.formats.rrc import (
    read_rrc_ground_truth,
    read_rrc_results,
    score_text,
    write_rrc_results,
)
from harness.metrics.deteval import deteval
from harness.metrics.icdar15 import icdar15
from harness.metrics.text_records import ImageDet


def write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def write_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


ICDAR15_GT = {
    # BOM, CRLF, a blank line, a transcription with commas, a don't-care word.
    "gt_img_2.txt": b"\xef\xbb\xbf10,10,50,10,50,30,10,30,Hello, world\r\n\r\n60,10,90,10,90,30,60,30,###\r\n",
    "gt_img_10.txt": "0,0,20,0,20,10,0,10,A\n",
    "img_2.jpg": b"\xff\xd8 not read",
    "notes.txt": "ignored: not a gt_<id>.txt name",
}


def test_read_icdar2015_ground_truth_folder(tmp_path: Path) -> None:
    truth = read_rrc_ground_truth(write_files(tmp_path / "gt", ICDAR15_GT))
    assert truth.form == "quad"
    assert list(truth.images) == ["img_2", "img_10"]  # natural order
    image = truth.images["img_2"]
    assert image.transcriptions == ("Hello, world", "###")
    assert image.dont_care.tolist() == [False, True]
    assert image.polygons[0].tolist() == [[10, 10], [50, 10], [50, 30], [10, 30]]
    assert truth.images["img_10"].polygons.shape == (1, 4, 2)


def test_read_icdar2013_ground_truth_zip(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "gt.zip",
        {
            "gt_img_1.txt": '38, 43, 920, 215, "Tiredness"\n275, 264, 665, 450, "say \\"hi\\", ok"\n1,2,3,4,"###"\n',
            "gt_img_2.txt": "",
            "gt_img_3.txt": '158 128 411 181 "Footpath"\n',  # as in ICDAR2013's training files
            "readme/": "",
        },
    )
    truth = read_rrc_ground_truth(archive)
    assert truth.form == "rect"
    image = truth.images["img_1"]
    assert image.transcriptions == ("Tiredness", 'say "hi", ok', "###")
    assert image.dont_care.tolist() == [False, False, True]
    assert image.polygons[0].tolist() == [[38, 43], [920, 43], [920, 215], [38, 215]]
    assert len(truth.images["img_2"].polygons) == 0
    assert truth.images["img_3"].polygons[0, 2].tolist() == [411, 181]
    assert truth.images["img_3"].transcriptions == ("Footpath",)


def test_malformed_ground_truth_names_file_and_line(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "gt", {"gt_img_1.txt": "0,0,10,0,10,10,0,10,ok\n\n0,0,10,0,ten,10,0,10,bad\n"})
    with pytest.raises(DatasetError, match=r"gt_img_1\.txt, line 3: expected x1,y1,x2,y2") as error:
        read_rrc_ground_truth(folder)
    assert error.value.hint
    # A rectangle line in an ICDAR2015 dataset: one form throughout.
    mixed = write_files(tmp_path / "mixed", {"gt_img_1.txt": "0,0,10,0,10,10,0,10,a\n", "gt_img_2.txt": "0,0,5,5,b\n"})
    with pytest.raises(DatasetError, match=r"gt_img_2\.txt, line 1"):
        read_rrc_ground_truth(mixed)
    inverted = write_files(tmp_path / "inverted", {"gt_img_1.txt": '9, 0, 5, 5, "x"\n'})
    with pytest.raises(DatasetError, match=r"line 1: expected xmin,ymin,xmax,ymax"):
        read_rrc_ground_truth(inverted, form="rect")


def test_ground_truth_without_gt_files(tmp_path: Path) -> None:
    nested = write_zip(tmp_path / "gt.zip", {"Task1_GT/gt_img_1.txt": "0,0,1,0,1,1,0,1,a\n"})
    with pytest.raises(DatasetError, match="no ground-truth files named gt_<id>.txt"):
        read_rrc_ground_truth(nested)
    with pytest.raises(DatasetError, match="no such folder"):
        read_rrc_ground_truth(tmp_path / "missing.zip")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        read_rrc_ground_truth(tmp_path / "broken.zip")


def test_read_results_line_forms(tmp_path: Path) -> None:
    folder = write_files(
        tmp_path / "res",
        {
            "res_img_1.txt": (
                "\ufeff0,0,10,0,10,10,0,10\r\n"  # 8 numbers, BOM, CRLF
                "1, 2, 11, 12\r\n"  # a rectangle, spaces
                "0,0,10,0,10,10,0,10,0.75\r\n"  # with a confidence
                "5,5,9,9,0.5,\r\n"  # a rectangle, a confidence and a trailing comma
                "\r\n"
                "0.5,1.5,10.25,1,10,10,0,10\r\n"  # decimals
            ),
        },
    )
    results = read_rrc_results(folder)
    image = results["img_1"]
    assert image.scores.tolist() == [1.0, 1.0, 0.75, 0.5, 1.0]
    assert image.polygons[1].tolist() == [[1, 2], [11, 2], [11, 12], [1, 12]]
    assert image.polygons[4][1].tolist() == [10.25, 1.0]


@pytest.mark.parametrize(
    "line",
    ["0,0,10,0,10,10,0", "0,0,10,0,10,10,0,10,0.5,word", "a,b,c,d", "0,0,nan,10", "10,0,5,5", "0,0,10,10,,"],
)
def test_malformed_result_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    folder = write_files(tmp_path / "res", {"res_img_1.txt": f"0,0,5,5\n{line}\n"})
    with pytest.raises(PredictionError, match=r"res_img_1\.txt, line 2: expected x1,y1") as error:
        read_rrc_results(folder)
    assert repr(line) in str(error.value)


def test_results_zip_stray_entries(tmp_path: Path) -> None:
    good = {
        "res_img_1.txt": "0,0,5,5\n",
        "__MACOSX/._res_img_1.txt": b"\x00\x05",
        "extra/": "",
        ".DS_Store": "x",
    }
    assert list(read_rrc_results(write_zip(tmp_path / "ok.zip", good))) == ["img_1"]
    with pytest.raises(PredictionError, match=r"stray\.zip:readme\.txt: unexpected entry") as error:
        read_rrc_results(write_zip(tmp_path / "stray.zip", {**good, "readme.txt": "hello"}))
    assert "top level" in str(error.value)
    with pytest.raises(PredictionError, match=r"nested\.zip:submit/res_img_1\.txt: unexpected entry"):
        read_rrc_results(write_zip(tmp_path / "nested.zip", {"submit/res_img_1.txt": "0,0,5,5\n"}))


def test_result_for_an_unknown_image(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "res", {"res_img_9.txt": "0,0,5,5\n"})
    with pytest.raises(PredictionError, match="no ground truth for image 'img_9'"):
        read_rrc_results(folder, image_ids=["img_1", "img_2"])


def test_writer_round_trip(tmp_path: Path) -> None:
    # Float corners, one quad counter-clockwise on screen: written as integers, clockwise on screen.
    results = {
        "img_1": ImageDet(
            polygons=np.array([[[0.4, 0.6], [10.5, 0], [10, 10], [0, 10]], [[20, 30], [30, 30], [30, 20], [20, 20]]]),
            scores=np.array([0.9, 0.25]),
        ),
        "img_2": ImageDet.empty(),
        "img_3": TextPolygons(polygons=np.array([[[1, 1], [5, 1], [5, 3], [1, 3]]], float), scores=np.array([0.5])),
    }
    archive = write_rrc_results(tmp_path / "out" / "submit.zip", results)
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["res_img_1.txt", "res_img_2.txt", "res_img_3.txt"]
        lines = opened.read("res_img_1.txt").decode().splitlines()
        assert opened.read("res_img_2.txt") == b""
    # Integers only, 8 per line, clockwise on screen (the official site's check: sum of
    # (x2 - x1) * (y2 + y1) over the edges must not be positive).
    assert lines == ["0,1,11,0,10,10,0,10", "20,20,30,20,30,30,20,30"]
    for line in lines:
        points = np.array(line.split(","), dtype=int).reshape(4, 2)
        following = np.roll(points, -1, axis=0)
        assert ((following[:, 0] - points[:, 0]) * (following[:, 1] + points[:, 1])).sum() <= 0
    back = read_rrc_results(archive)
    assert back["img_1"].polygons.tolist() == [
        [[0, 1], [11, 0], [10, 10], [0, 10]],
        [[20, 20], [30, 20], [30, 30], [20, 30]],
    ]
    assert len(back["img_2"].polygons) == 0
    # The same bytes for the same results; confidences and rectangles on request; a folder works alike.
    assert write_rrc_results(tmp_path / "again.zip", results).read_bytes() == archive.read_bytes()
    folder = write_rrc_results(tmp_path / "folder", results, form="rect", with_confidence=True)
    assert (folder / "res_img_1.txt").read_text().splitlines() == [
        "0,0,11,10,0.900000",
        "20,20,30,30,0.250000",
    ]
    assert read_rrc_results(folder)["img_1"].scores.tolist() == [0.9, 0.25]


def test_writer_refusals(tmp_path: Path) -> None:
    with pytest.raises(PredictionError, match="not an empty folder"):
        write_rrc_results(write_files(tmp_path / "used", {"old.txt": "x"}), {"img_1": ImageDet.empty()})
    pentagon = TextPolygons(polygons=np.zeros((1, 5, 2)), scores=np.ones(1))
    with pytest.raises(PredictionError, match="not \\(N, 4, 2\\) quads"):
        write_rrc_results(tmp_path / "a.zip", {"img_1": pentagon})
    with pytest.raises(PredictionError, match="cannot name an RRC file"):
        write_rrc_results(tmp_path / "b.zip", {"img 1": ImageDet.empty()})


def test_score_text_reads_both_sides(tmp_path: Path) -> None:
    # img_1: two words, the first found exactly, the second (###) covered by a detection that is therefore
    #   don't care. img_2: one word 0..100 x 0..20 found as two halves: a DetEval split (recall 0.8,
    #   precision 0.8 * 2), no IoU match (each half has IoU 0.5, not > 0.5). img_3: one word, no result file.
    # DetEval (quad form: ICDAR2015 ground truth): recall (1 + 0.8) / 3 = 0.6, precision (1 + 1.6) / 3
    #   = 0.8667 (3 cared detections), h-mean 2 * 0.6 * 0.8667 / 1.4667 = 0.7091.
    # IoU: 1 match, 3 cared gts, 3 cared detections: 0.3333 each.
    gt = write_zip(
        tmp_path / "gt.zip",
        {
            "gt_img_1.txt": "0,0,40,0,40,20,0,20,word\n100,0,140,0,140,20,100,20,###\n",
            "gt_img_2.txt": "0,0,100,0,100,20,0,20,long\n",
            "gt_img_3.txt": "0,0,10,0,10,10,0,10,lost\n",
        },
    )
    res = write_files(
        tmp_path / "res",
        {
            "res_img_1.txt": "0,0,40,0,40,20,0,20\n100,0,140,0,140,20,100,20\n",
            "res_img_2.txt": "0,0,50,0,50,20,0,20\n50,0,100,0,100,20,50,20\n",
        },
    )
    scores = score_text(gt, res)
    assert {key: round(value, 4) for key, value in scores.items()} == {
        "deteval_precision": 0.8667,
        "deteval_recall": 0.6,
        "deteval_hmean": 0.7091,
        "iou_precision": 0.3333,
        "iou_recall": 0.3333,
        "iou_hmean": 0.3333,
    }
    # Scoring what the writer wrote gives what scoring in memory gives.
    truth = read_rrc_ground_truth(gt)
    detections = read_rrc_results(res)
    det = [detections.get(image_id, ImageDet.empty()) for image_id in truth.images]
    written = write_rrc_results(tmp_path / "written.zip", dict(zip(truth.images, det, strict=True)))
    in_memory = {
        **deteval(list(truth.images.values()), det, "quad"),
        **icdar15(list(truth.images.values()), det),
    }
    assert score_text(gt, written) == in_memory == scores


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        # Clockwise on screen from the bottom-left instead: the official sum of (x2 - x1)(y2 + y1) is +200 > 0.
        ("0,10,10,10,10,0,0,0", "the quadrilateral's points are counter-clockwise"),
        ("0,0,0,10,10,10,10,0,0.9", "the quadrilateral's points are counter-clockwise"),
        # A bow-tie: edges (0,0)-(10,10) and (10,0)-(0,10) cross at (5,5); its official sum is 0 (accepted
        # there), and a lopsided one with a negative sum is refused all the same.
        ("0,0,10,10,10,0,0,10", "the quadrilateral's edges cross"),
        ("0,0,20,10,20,0,0,10", "the quadrilateral's edges cross"),
        # Zero area: corners on one line, or all the same point.
        ("0,0,5,5,10,10,5,5", "the quadrilateral has zero area"),
        ("3,3,3,3,3,3,3,3", "the quadrilateral has zero area"),
        # A repeated corner (a triangle) and a corner on the opposite edge: not simple polygons.
        ("0,0,10,0,10,0,0,10", "the quadrilateral is not a simple polygon"),
        ("0,0,10,10,0,10,5,5", "the quadrilateral is not a simple polygon"),
    ],
)
def test_result_quads_are_validated_as_the_official_site_does(tmp_path: Path, line: str, problem: str) -> None:
    folder = write_files(tmp_path / "res", {"res_img_3.txt": f"0,0,10,0,10,10,0,10\n{line}\n"})
    with pytest.raises(PredictionError, match=rf"res_img_3\.txt, line 2: {problem}") as error:
        read_rrc_results(folder)
    assert repr(line) in str(error.value)
    assert "clockwise from the top-left" in str(error.value.hint)


def test_clockwise_result_quads_are_accepted(tmp_path: Path) -> None:
    # Clockwise on screen (y down), from any corner; a concave (arrow) quad; rectangles (4 numbers) of zero
    # width, which the official LTRB format accepts; and ground truth in either order, which is not checked.
    lines = "10,0,10,10,0,10,0,0\n0,0,30,10,0,20,8,10\n0.5,0.5,9.5,0.5,9.5,9.5,0.5,9.5,0.7\n5,5,5,9\n"
    results = read_rrc_results(write_files(tmp_path / "res", {"res_img_1.txt": lines}))
    assert len(results["img_1"].polygons) == 4
    truth = read_rrc_ground_truth(write_files(tmp_path / "gt", {"gt_img_1.txt": "0,10,10,10,10,0,0,0,word\n"}))
    assert truth.images["img_1"].polygons.shape == (1, 4, 2)


def test_writer_refuses_quads_the_reader_would_refuse(tmp_path: Path) -> None:
    # 0.4 px tall: its corners round onto one line.
    flat = ImageDet(polygons=np.array([[[0, 0], [10, 0], [10, 0.4], [0, 0.4]]]), scores=np.ones(1))
    with pytest.raises(PredictionError, match=r"image 'img_1', detection 0: once rounded .* has zero area"):
        write_rrc_results(tmp_path / "a.zip", {"img_1": flat})
    bow_tie = ImageDet(polygons=np.array([[[0, 0], [10, 10], [10, 0], [0, 10]]], float), scores=np.ones(1))
    with pytest.raises(PredictionError, match="the quadrilateral's edges cross"):
        write_rrc_results(tmp_path / "b.zip", {"img_1": bow_tie})
    # As rectangles both are fine.
    write_rrc_results(tmp_path / "c.zip", {"img_1": flat, "img_2": bow_tie}, form="rect")
