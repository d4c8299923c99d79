"""COCO-format import and the VisDrone-DET converter, on small fixture sets written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.datasets.coco_import import import_coco
from harness.datasets.visdrone import VISDRONE_CATEGORIES, convert_visdrone, visdrone_to_coco
from harness.errors import DatasetError
from harness.metrics.coco import load_json, score_coco


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 30)).save(path)


def _coco_set(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    _image(images / "a.png", 64, 48)
    _image(images / "sub" / "b.jpg", 32, 40)
    _image(images / "unlisted.png", 8, 8)
    gt = {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 9, "file_name": "sub/b.jpg"},
        ],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 3, "bbox": [4, 4, 10, 12]},
            {"id": 2, "image_id": 9, "category_id": 3, "bbox": [1, 2, 6, 6], "area": 30.5, "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "thing"}],
    }
    annotations = root / "instances.json"
    annotations.write_text(json.dumps(gt))
    return images, annotations


def test_import_coco_writes_the_split_layout(tmp_path):
    images, annotations = _coco_set(tmp_path / "src")
    split = tmp_path / "split"
    import_coco(images, annotations, split)

    index = json.loads((split / "inputs" / "index.json").read_text())
    assert index == {"ids": ["5", "9"], "files": ["a.png", "sub/b.jpg"]}
    assert sorted(p.relative_to(split).as_posix() for p in split.rglob("*") if p.is_file()) == [
        "hidden/instances.json",
        "inputs/a.png",
        "inputs/index.json",
        "inputs/sub/b.jpg",
    ]
    assert (split / "inputs" / "sub" / "b.jpg").read_bytes() == (images / "sub" / "b.jpg").read_bytes()
    # Hard-linked where the file system allows it (tmp_path is one file system).
    assert (split / "inputs" / "a.png").stat().st_ino == (images / "a.png").stat().st_ino

    hidden = load_json(split / "hidden" / "instances.json")
    assert hidden["images"][1] == {"id": 9, "file_name": "sub/b.jpg", "width": 32, "height": 40}
    assert [(a["area"], a["iscrowd"]) for a in hidden["annotations"]] == [(120.0, 0), (30.5, 0)]
    perfect = [
        {"image_id": a["image_id"], "category_id": 3, "bbox": a["bbox"], "score": 1.0} for a in hidden["annotations"]
    ]
    assert score_coco(hidden, perfect, backend="faster-coco-eval")["AP"] == pytest.approx(1.0)


def test_import_coco_can_copy(tmp_path):
    images, annotations = _coco_set(tmp_path / "src")
    import_coco(images, annotations, tmp_path / "split", link=False)
    assert (tmp_path / "split" / "inputs" / "a.png").stat().st_ino != (images / "a.png").stat().st_ino


def _edit_gt(annotations: Path, edit) -> None:
    gt = json.loads(annotations.read_text())
    edit(gt)
    annotations.write_text(json.dumps(gt))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda g: g["images"][1].update(file_name="sub/c.jpg"),
            r"1 of 2 images are missing under .*images: sub/c.jpg",
        ),
        (lambda g: g["images"][0].update(height=50), r"image 5 \(a.png\) has `height` 50, the file is 64x48"),
        (
            lambda g: g["images"][0].update(file_name="../a.png"),
            r"images\[0\] has `file_name` '../a.png', which leaves",
        ),
        (
            lambda g: g["images"][0].update(file_name="a.gif"),
            r"images\[0\] has `file_name` 'a.gif'; only .png",
        ),
        (lambda g: g["images"][1].update(file_name="a.png"), r"images\[1\] repeats `file_name` 'a.png'"),
        (lambda g: g["images"][0].pop("file_name"), r"images\[0\] has `file_name` None"),
        (
            lambda g: g["annotations"][0].update(image_id=4),
            r"annotations\[0\] \(id 1, image_id 4\): `image_id` 4",
        ),
    ],
)
def test_import_coco_errors_write_nothing(tmp_path, edit, message):
    images, annotations = _coco_set(tmp_path / "src")
    _edit_gt(annotations, edit)
    with pytest.raises(DatasetError, match=message) as info:
        import_coco(images, annotations, tmp_path / "split")
    assert str(annotations) in str(info.value)
    assert not (tmp_path / "split").exists()


def test_import_coco_missing_inputs_and_busy_destination(tmp_path):
    images, annotations = _coco_set(tmp_path / "src")
    with pytest.raises(DatasetError, match=r"nope: images folder not found"):
        import_coco(tmp_path / "nope", annotations, tmp_path / "split")
    with pytest.raises(DatasetError, match=r"gone.json: no such file"):
        import_coco(images, tmp_path / "gone.json", tmp_path / "split")
    annotations.write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"instances.json: invalid JSON at line 1"):
        import_coco(images, annotations, tmp_path / "split")
    images, annotations = _coco_set(tmp_path / "src2")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "old.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"busy: already exists and is not empty"):
        import_coco(images, annotations, busy)
    (images / "a.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"a.png: not a readable image"):
        import_coco(images, annotations, tmp_path / "split")


# --- VisDrone-DET ------------------------------------------------------------------------------------

# Lines exactly as VisDrone-DET ships them: bbox_left,bbox_top,bbox_width,bbox_height,score,
# object_category,truncation,occlusion (some files end each line with a comma).
VISDRONE_LINES = [
    "60,2,30,20,0,0,0,0",  # ignored region
    "10,12,20,15,1,4,0,1",  # car
    "30,5,8,9,1,1,1,0",  # pedestrian
    "40,30,5,5,1,11,0,0",  # others -> ignored
    "1,1,6,7,0,2,0,0",  # people, score 0 -> ignored (people only)
    "5,5,0,4,1,3,0,0",  # zero width -> dropped
    "2,40,14,6,1,10,0,2,",  # motor, trailing comma
]


def _visdrone(root: Path) -> Path:
    _image(root / "images" / "0000001_00000_d_0000001.jpg", 96, 54)
    _image(root / "images" / "0000002_00000_d_0000002.jpg", 40, 30)
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "0000001_00000_d_0000001.txt").write_text("\n".join(VISDRONE_LINES) + "\n")
    (root / "annotations" / "0000002_00000_d_0000002.txt").write_text("")
    return root


def test_visdrone_to_coco_maps_categories_and_ignore_regions(tmp_path):
    gt = visdrone_to_coco(_visdrone(tmp_path / "VisDrone2019-DET-val"))
    names = [
        "pedestrian",
        "people",
        "bicycle",
        "car",
        "van",
        "truck",
        "tricycle",
        "awning-tricycle",
        "bus",
        "motor",
    ]
    assert [c["name"] for c in gt["categories"]] == names
    assert gt["images"] == [
        {"id": 1, "file_name": "0000001_00000_d_0000001.jpg", "width": 96, "height": 54},
        {"id": 2, "file_name": "0000002_00000_d_0000002.jpg", "width": 40, "height": 30},
    ]
    annotations = gt["annotations"]
    # 10 (ignored region) + car + pedestrian + 10 (others) + people + motor; the zero-width box is dropped.
    assert len(annotations) == 24
    assert len({a["id"] for a in annotations}) == 24
    assert all(a["image_id"] == 1 for a in annotations)
    scored = [
        (a["category_id"], a["bbox"], a["area"], a["truncation"], a["occlusion"])
        for a in annotations
        if not a["iscrowd"]
    ]
    assert scored == [
        (4, [10, 12, 20, 15], 300, 0, 1),
        (1, [30, 5, 8, 9], 72, 1, 0),
        (10, [2, 40, 14, 6], 84, 0, 2),
    ]
    crowd = [(a["category_id"], a["bbox"]) for a in annotations if a["iscrowd"]]
    ignored_region = [(cid, [60, 2, 30, 20]) for cid in VISDRONE_CATEGORIES]
    others = [(cid, [40, 30, 5, 5]) for cid in VISDRONE_CATEGORIES]
    assert crowd == ignored_region + others + [(2, [1, 1, 6, 7])]


def test_convert_visdrone_split_scores_as_expected(tmp_path):
    root = _visdrone(tmp_path / "vd")
    split = tmp_path / "split"
    convert_visdrone(root, split)
    index = json.loads((split / "inputs" / "index.json").read_text())
    assert index == {
        "ids": ["1", "2"],
        "files": ["0000001_00000_d_0000001.jpg", "0000002_00000_d_0000002.jpg"],
    }
    hidden = load_json(split / "hidden" / "instances.json")
    perfect = [
        {"image_id": 1, "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5}
        for a in hidden["annotations"]
        if not a["iscrowd"]
    ]
    # A confident "bus" inside the ignored region is ignored, not a false positive.
    in_ignored_region = {"image_id": 1, "category_id": 9, "bbox": [62, 4, 20, 14], "score": 0.9}
    metrics = score_coco(hidden, perfect + [in_ignored_region], backend="pycocotools", ranges="coco")
    assert metrics["AP"] == pytest.approx(1.0)
    # The same box on the empty second image is a false positive for "bus", which has no objects: still
    # -1 for bus, so AP over the scored categories (car, pedestrian, motor) is unchanged.
    assert score_coco(hidden, perfect + [{**in_ignored_region, "image_id": 2}], ranges="coco")["AP"] == pytest.approx(
        1.0
    )
    # As a "car" on image 2 it outranks the true car: car AP 0.5, mean over 3 categories (1 + 1 + 0.5) / 3.
    false_car = {**in_ignored_region, "image_id": 2, "category_id": 4, "bbox": [1, 1, 20, 14]}
    assert score_coco(hidden, perfect + [false_car], ranges="coco")["AP"] == pytest.approx(2.5 / 3)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,2,3,4,1,4,0", r"0000001_00000_d_0000001.txt:2: 7 fields, expected 8"),
        ("1,2,3,4,1,12,0,0", r"0000001_00000_d_0000001.txt:2: `object_category` is 12, expected 0-11"),
        ("1,2,3,4,0.87,4,0,0", r"0000001_00000_d_0000001.txt:2: `score` is 0.87, expected an integer"),
        ("1,2,3,4,-1,4,-1,-1", r"0000001_00000_d_0000001.txt:2: `score` is -1, ground truth uses 1"),
        ("1,2,-3,4,1,4,0,0", r"0000001_00000_d_0000001.txt:2: box \[1, 2, -3, 4\] has a negative width"),
        ("1,2,x,4,1,4,0,0", r"0000001_00000_d_0000001.txt:2: `bbox_width` is 'x', expected a number"),
    ],
)
def test_visdrone_bad_lines_name_file_and_line(tmp_path, line, message):
    root = _visdrone(tmp_path / "vd")
    (root / "annotations" / "0000001_00000_d_0000001.txt").write_text(f"10,12,20,15,1,4,0,1\n{line}\n")
    with pytest.raises(DatasetError, match=message):
        convert_visdrone(root, tmp_path / "split")
    assert not (tmp_path / "split").exists()


def test_visdrone_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"vd/images: folder not found"):
        visdrone_to_coco(tmp_path / "vd")
    root = _visdrone(tmp_path / "vd")
    (root / "annotations" / "0000002_00000_d_0000002.txt").unlink()
    with pytest.raises(DatasetError, match=r"no annotation file for 1 images: 0000002_00000_d_0000002.jpg"):
        visdrone_to_coco(root)
    (root / "annotations" / "0000002_00000_d_0000002.txt").write_text("")
    (root / "annotations" / "0000003_00000_d_0000003.txt").write_text("")
    with pytest.raises(DatasetError, match=r"no image for 1 annotation files: 0000003_00000_d_0000003"):
        visdrone_to_coco(root)
