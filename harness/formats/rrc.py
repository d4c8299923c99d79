"""Robust Reading Competition (RRC) text-detection files: read ground truth and results, write results.

Layout. A source is a folder or a zip archive holding one text file per image, at its top level:
ground truth `gt_<id>.txt`, results `res_<id>.txt`, where <id> is letters, digits, `_` or `-` (the RRC
site itself wants `img_<N>`, e.g. `gt_img_12.txt` / `res_img_12.txt`; the image id is then `img_12`).

Lines. Files are UTF-8, optionally with a byte-order mark; LF, CRLF or CR line ends; blank lines are
skipped; fields are separated by commas with optional spaces around them.

* Ground truth, ICDAR2015 (`form="quad"`): `x1,y1,x2,y2,x3,y3,x4,y4,transcription`; the transcription
  is the rest of the line and may contain commas. ICDAR2013 (`form="rect"`): `xmin, ymin, xmax, ymax,
  "transcription"` (the ICDAR2013 training files' `xmin ymin xmax ymax "transcription"`, separated by
  spaces, reads too). A transcription in double quotes is unquoted (`\\"` and `\\\\` unescaped); `###` marks
  a don't-care word. With `form="auto"` the first data line of the dataset decides (a line that reads as
  a quad is a quad), and every other line must have that form.
* Results: `x1,y1,...,x4,y4` or `xmin,ymin,xmax,ymax` (4 or 8 numbers), optionally followed by a
  confidence (1.0 when absent). Numbers may be decimals; the scorers round corners to integers as the
  official files hold (the official site accepts integers only, which `write_rrc_results` writes).

What is read, and what is refused:

* Ground truth: entries that are not `gt_<id>.txt` at the top level are ignored, as the official script
  does (a dataset folder also holds the images). No ground-truth file at all is a `DatasetError`.
* Results: every entry must be `res_<id>.txt` at the top level, as the official site demands, except
  directories, anything under `__MACOSX/` and dot-files (`.DS_Store`), which are ignored. Any other entry
  (a stray file, or result files inside a sub-folder of the archive) is a `PredictionError` naming it.
  A result file for an image without ground truth is a `PredictionError`; an image without a result file
  has no detections, as in the official script.
* A malformed line is a `DatasetError` (ground truth) or `PredictionError` (results) naming the file, the
  line number and the expected format.
* Result quadrilaterals (8-number lines) are checked as the official ICDAR2015 validator checks them
  (`rrc_evaluation_funcs.validate_clockwise_points`): the sum of (x2 − x1)(y2 + y1) over the four edges must
  not be positive, i.e. the points go clockwise on screen (y pointing down). The official check looks at that
  sum alone, so it lets through a quadrilateral of zero area and a self-intersecting ("bow-tie") one whose
  sum is not positive; both are refused here too (see `quad_problem`). Each refusal is a `PredictionError`
  naming the file, the line and the fix. The check is exact, on the numbers as written (the official one
  truncates them to integers, which official files are). Rectangles (4 numbers) need only xmax >= xmin and
  ymax >= ymin, as officially.
* Ground truth keeps its leniency: its quadrilaterals may go either way round and are not checked for shape.
  The official script runs the same clockwise check on ground-truth lines, but ground truth is the
  organiser's, the scorers do not depend on vertex order, and datasets converted from other sources must
  still read; `write_rrc_results` writes only quadrilaterals the result check accepts.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Settings, settings
from harness.errors import DatasetError, HarnessError, PredictionError
from harness.formats.limits import ByteBudget, clipped, counted_chunks, quoted, stream_lines
from harness.metrics.deteval import deteval
from harness.metrics.icdar15 import icdar15
from harness.metrics.quad_geometry import positively_oriented
from harness.metrics.text_records import ImageDet, ImageGT, integer_coordinates

GT_NAME = re.compile(r"gt_([A-Za-z0-9_-]+)\.txt")
RESULT_NAME = re.compile(r"res_([A-Za-z0-9_-]+)\.txt")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_QUOTED = re.compile(r'\s*"(.*)"\s*', re.DOTALL)
GT_FORMATS = {
    "quad": "x1,y1,x2,y2,x3,y3,x4,y4,transcription (ICDAR2015)",
    "rect": 'xmin,ymin,xmax,ymax,"transcription" (ICDAR2013)',
}
RESULT_FORMAT = "x1,y1,x2,y2,x3,y3,x4,y4[,confidence] or xmin,ymin,xmax,ymax[,confidence]"
Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class RRCGroundTruth:
    """The ground truth of a dataset: one record per image id (in natural order) and the file form."""

    images: dict[str, ImageGT]
    form: str  # "quad" (ICDAR2015 quadrilaterals) or "rect" (ICDAR2013 rectangles)


def natural_key(image_id: str) -> list[Any]:
    """Sort key that puts img_2 before img_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", image_id)]


Line = tuple[int, str]  # (1-based line number, line)
Lines = Callable[[], Iterator[Line]]
# What a corrupt, encrypted or exotic zip member raises while it is read.
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)


@contextmanager
def _entries(source: Path, error: type[HarnessError]) -> Iterator[list[tuple[str, str, Lines]]]:
    """(entry name inside the source, name to show in messages, its lines) of every entry of a folder or zip.

    A folder lists its top-level files (sub-folders are skipped); a zip lists every member, directories
    included, so that callers can judge stray entries. Lines can be read until the context closes, within the
    settings' limits: the number of entries, their unpacked size together (declared, and counted as read) and
    the length of a line (see `harness.formats.limits`).
    """
    limits = settings()
    if source.is_dir():
        files = sorted((path for path in source.iterdir() if path.is_file()), key=lambda item: item.name)
        _refuse_members(source, len(files), limits, error)
        budget = ByteBudget("the folder's files", limits.max_unpacked_bytes, "HARNESS_MAX_UNPACKED_MB", error)
        yield [(path.name, str(path), partial(_file_lines, path, budget, limits, error)) for path in files]
        return
    if not source.exists():
        raise error(f"{source}: no such folder or zip archive")
    archive = _open_archive(source, limits, error)
    budget = ByteBudget("the archive's members", limits.max_unpacked_bytes, "HARNESS_MAX_UNPACKED_MB", error)
    with archive:
        yield [
            (
                info.filename,
                f"{source}:{clipped(info.filename)}",
                partial(_member_lines, archive, info, f"{source}:{clipped(info.filename)}", budget, limits, error),
            )
            for info in archive.infolist()
        ]


def _refuse_members(source: Path, count: int, limits: Settings, error: type[HarnessError]) -> None:
    if count > limits.max_archive_members:
        raise error(
            f"{source}: holds {count:,} entries, over the limit of {limits.max_archive_members:,}",
            "give one text file per image, or raise HARNESS_MAX_ARCHIVE_MEMBERS",
        )


def _open_archive(source: Path, limits: Settings, error: type[HarnessError]) -> zipfile.ZipFile:
    """The zip archive, its member count checked from its end record before its directory is read (a directory
    of millions of entries would fill memory)."""
    unreadable = "give a folder or a .zip archive of the text files"
    try:
        with source.open("rb") as handle:
            end_record = zipfile._EndRecData(handle)  # the count the archive declares; zipfile has no public reader
        if end_record:
            _refuse_members(source, end_record[zipfile._ECD_ENTRIES_TOTAL], limits, error)
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise error(f"{source}: not a readable zip archive ({exc})", unreadable) from exc
    _refuse_members(source, len(archive.infolist()), limits, error)
    return archive


def _member_lines(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shown: str,
    budget: ByteBudget,
    limits: Settings,
    error: type[HarnessError],
) -> Iterator[tuple[int, str]]:
    """The lines of one member, its bytes counted against `budget` as they are unpacked."""
    try:
        with archive.open(info) as stream:
            chunks = counted_chunks(stream, info.file_size, budget, shown)
            yield from stream_lines(chunks, shown, limits.max_line_bytes, "HARNESS_MAX_LINE_BYTES", error)
    except _MEMBER_ERRORS as exc:
        raise error(f"{shown}: cannot be read from the archive ({exc})", "write the archive again") from exc


def _file_lines(path: Path, budget: ByteBudget, limits: Settings, error: type[HarnessError]) -> Iterator[Line]:
    """The lines of one file of a folder, its bytes counted against `budget` as they are read."""
    try:
        with path.open("rb") as stream:
            chunks = counted_chunks(stream, path.stat().st_size, budget, str(path))
            yield from stream_lines(chunks, str(path), limits.max_line_bytes, "HARNESS_MAX_LINE_BYTES", error)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})", "check the file's permissions") from exc


def _numbers(fields: list[str]) -> list[float] | None:
    if not all(_NUMBER.fullmatch(field.strip()) for field in fields):
        return None
    values = [float(field) for field in fields]
    return values if all(np.isfinite(values)) else None


def _unquote(transcription: str) -> str:
    quoted = _QUOTED.fullmatch(transcription)
    if quoted is None:
        return transcription.strip()
    return quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')


def _rect_corners(xmin: float, ymin: float, xmax: float, ymax: float) -> list[list[float]]:
    return [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]


def _parse_gt_line(line: str, form: str) -> tuple[list[list[float]], str] | None:
    """Corners and transcription of a ground-truth line in `form`, or None when it is not that form."""
    count = 8 if form == "quad" else 4
    if form == "rect" and "," not in line:
        # ICDAR2013's training files separate the fields with spaces.
        fields = line.split(None, count)
        rest = fields[count] if len(fields) > count else ""
    else:
        fields = line.split(",")
        rest = ",".join(fields[count:])
    values = _numbers(fields[:count]) if len(fields) >= count else None
    if values is None:
        return None
    transcription = _unquote(rest)
    if form == "quad":
        return [values[i : i + 2] for i in range(0, 8, 2)], transcription
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        return None
    return _rect_corners(xmin, ymin, xmax, ymax), transcription


def read_rrc_ground_truth(source: str | Path, form: str = "auto") -> RRCGroundTruth:
    """Read `gt_<id>.txt` files from a folder or zip: ICDAR2015 quads (`form="quad"`), ICDAR2013
    rectangles (`"rect"`) or whichever the first data line shows (`"auto"`)."""
    if form not in ("auto", *GT_FORMATS):
        raise ValueError(f"form must be 'auto', 'quad' or 'rect', got {form!r}")
    source = Path(source)
    images: dict[str, ImageGT] = {}
    with _entries(source, DatasetError) as entries:
        files = [(match.group(1), shown, lines) for name, shown, lines in entries if (match := GT_NAME.fullmatch(name))]
        if not files:
            raise DatasetError(
                f"{source}: no ground-truth files named gt_<id>.txt at its top level",
                "put one gt_<id>.txt per image (e.g. gt_img_1.txt) directly in the folder or archive",
            )
        for image_id, shown, lines in sorted(files, key=lambda item: natural_key(item[0])):
            images[image_id], form = _read_gt_file(shown, lines(), form)
    return RRCGroundTruth(images=images, form="quad" if form == "auto" else form)


def _read_gt_file(shown: str, lines: Iterator[tuple[int, str]], form: str) -> tuple[ImageGT, str]:
    """The ground truth of one file, and the form (decided by its first data line when it was "auto")."""
    corners, transcriptions = [], []
    for number, line in lines:
        if form == "auto":
            form = "quad" if _parse_gt_line(line, "quad") is not None else "rect"
        parsed = _parse_gt_line(line, form)
        if parsed is None:
            raise DatasetError(
                f"{shown}, line {number}: expected {GT_FORMATS[form]}, found {quoted(line.strip())}",
                "numbers separated by commas, then the transcription (### for don't care); "
                "xmax >= xmin and ymax >= ymin for rectangles; one form throughout the dataset",
            )
        corners.append(parsed[0])
        transcriptions.append(parsed[1])
    truth = ImageGT.from_transcriptions(np.array(corners, dtype=np.float64).reshape(-1, 4, 2), transcriptions)
    return truth, form


def _parse_result_line(line: str) -> tuple[list[list[float]], float, bool] | None:
    """Corners, confidence and whether the line gave a quadrilateral (8 numbers) rather than a rectangle."""
    fields = line.split(",")
    if len(fields) > 1 and not fields[-1].strip():
        fields = fields[:-1]  # a trailing comma
    values = _numbers(fields) if len(fields) in (4, 5, 8, 9) else None
    if values is None:
        return None
    confidence = values[-1] if len(values) in (5, 9) else 1.0
    if len(values) >= 8:
        return [values[i : i + 2] for i in range(0, 8, 2)], confidence, True
    xmin, ymin, xmax, ymax = values[:4]
    if xmax < xmin or ymax < ymin:
        return None
    return _rect_corners(xmin, ymin, xmax, ymax), confidence, False


def _orientation(a: Point, b: Point, c: Point) -> int:
    """The sign of the turn a -> b -> c: > 0 clockwise on screen (y down), < 0 counter-clockwise, 0 collinear."""
    turn = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (turn > 0) - (turn < 0)


def _on_segment(a: Point, b: Point, point: Point) -> bool:
    """Whether `point`, collinear with a and b, lies between them (ends included)."""
    return min(a[0], b[0]) <= point[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= point[1] <= max(a[1], b[1])


def _opposite_edges_meet(corners: list[Point]) -> tuple[bool, bool]:
    """(whether a pair of opposite edges cross at a point inside both, whether one touches the other)."""
    cross = touch = False
    for p, q, r, t in ((0, 1, 2, 3), (1, 2, 3, 0)):
        a, b, c, d = corners[p], corners[q], corners[r], corners[t]
        sides = (_orientation(a, b, c), _orientation(a, b, d), _orientation(c, d, a), _orientation(c, d, b))
        cross |= sides[0] * sides[1] < 0 and sides[2] * sides[3] < 0
        touch |= any(
            side == 0 and _on_segment(*ends, point)
            for side, ends, point in zip(sides, ((a, b), (a, b), (c, d), (c, d)), (c, d, a, b), strict=True)
        )
    return cross, touch


def quad_problem(corners: list[list[float]]) -> tuple[str, str] | None:
    """Why the official ICDAR2015 validator, or the stricter check here, refuses a result quadrilateral, and
    how to fix it; None when it is accepted. Computed exactly on the numbers as written.

    The official rule (`rrc_evaluation_funcs.validate_clockwise_points`) sums (x2 − x1)(y2 + y1) over the four
    edges and refuses a positive sum: points counter-clockwise on screen (y pointing down). It accepts a
    quadrilateral of zero area (sum 0) and a self-intersecting one whose sum is not positive; here both are
    refused as well, since neither outlines a word and the scorers' areas for them mean nothing.
    """
    points = [(Fraction(x), Fraction(y)) for x, y in corners]
    edges = list(zip(points, points[1:] + points[:1], strict=True))
    official_sum = sum(((b[0] - a[0]) * (b[1] + a[1]) for a, b in edges), Fraction(0))  # −2 × signed area
    cross, touch = _opposite_edges_meet(points)
    in_order = "give the four corners in order around the word, clockwise from the top-left, as ICDAR2015 does"
    if cross:
        return "the quadrilateral's edges cross (a self-intersecting 'bow-tie')", in_order
    if official_sum == 0:
        return (
            "the quadrilateral has zero area (its corners are repeated or lie on one line)",
            "drop the detection, or give four corners around the word, clockwise from the top-left",
        )
    if touch:
        return "the quadrilateral is not a simple polygon (a corner is repeated or lies on an opposite edge)", in_order
    if official_sum > 0:
        return (
            "the quadrilateral's points are counter-clockwise (in image coordinates, y pointing down)",
            "give them clockwise from the top-left, as ICDAR2015 does (the official validator refuses a "
            "positive sum of (x2 - x1)(y2 + y1) over the edges)",
        )
    return None


def _ignored_result_entry(name: str) -> bool:
    return name.endswith("/") or name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1].startswith(".")


def read_rrc_results(source: str | Path, image_ids: Iterable[str] | None = None) -> dict[str, ImageDet]:
    """Read `res_<id>.txt` files from a folder or zip into detections per image id.

    With `image_ids` (the ground truth's), a result for any other id is refused. Images without a file are
    simply absent from the mapping: they have no detections.
    """
    source = Path(source)
    known = set(image_ids) if image_ids is not None else None
    results: dict[str, ImageDet] = {}
    with _entries(source, PredictionError) as entries:
        files = []
        for name, shown, lines in entries:
            if _ignored_result_entry(name):
                continue
            match = RESULT_NAME.fullmatch(name)
            if match is None:
                raise PredictionError(
                    f"{shown}: unexpected entry; results hold only res_<id>.txt files, at the top level",
                    "remove the entry, or move the result files out of their sub-folder to the top level",
                )
            files.append((match.group(1), shown, lines))
        for image_id, shown, lines in files:
            if known is not None and image_id not in known:
                raise PredictionError(
                    f"{shown}: there is no ground truth for image {quoted(image_id)}",
                    "name result files after the ground truth's images: gt_<id>.txt -> res_<id>.txt",
                )
            if image_id in results:
                raise PredictionError(f"{shown}: a second result file for image {quoted(image_id)}")
            results[image_id] = _read_result_file(shown, lines())
    return dict(sorted(results.items(), key=lambda item: natural_key(item[0])))


def _read_result_file(shown: str, lines: Iterator[tuple[int, str]]) -> ImageDet:
    """The detections of one result file; a malformed line or a quadrilateral the official validator (or the
    stricter check of `quad_problem`) refuses is a `PredictionError` naming the file and the line, and so are
    more detections than `HARNESS_MAX_PREDICTIONS_PER_IMAGE`."""
    corners, confidences = [], []
    most = settings().max_predictions_per_image
    for number, line in lines:
        if len(corners) == most:
            raise PredictionError(
                f"{shown}, line {number}: more than {most:,} detections for one image",
                "keep the most confident detections, or raise HARNESS_MAX_PREDICTIONS_PER_IMAGE",
            )
        parsed = _parse_result_line(line)
        if parsed is None:
            raise PredictionError(
                f"{shown}, line {number}: expected {RESULT_FORMAT}, found {quoted(line.strip())}",
                "4 or 8 finite numbers separated by commas, then optionally a confidence; "
                "xmax >= xmin and ymax >= ymin for rectangles",
            )
        problem = quad_problem(parsed[0]) if parsed[2] else None
        if problem is not None:
            raise PredictionError(f"{shown}, line {number}: {problem[0]}, found {quoted(line.strip())}", problem[1])
        corners.append(parsed[0])
        confidences.append(parsed[1])
    return ImageDet(polygons=np.array(corners, dtype=np.float64).reshape(-1, 4, 2), scores=np.array(confidences))


def _result_lines(detections: Any, image_id: str, form: str, with_confidence: bool) -> str:
    polygons = np.asarray(detections.polygons, dtype=np.float64)
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    if polygons.size and (polygons.ndim != 3 or polygons.shape[1:] != (4, 2)):
        raise PredictionError(
            f"results for image {image_id!r}: polygons of shape {polygons.shape}, not (N, 4, 2) quads",
            "reduce each polygon to 4 corners (e.g. its minimum-area rectangle) before writing",
        )
    quads = ImageDet(polygons=polygons.reshape(-1, 4, 2), scores=scores).polygons
    corners = positively_oriented(integer_coordinates(quads)).astype(np.int64)
    lines = []
    for index, (quad, score) in enumerate(zip(corners, scores.tolist(), strict=True)):
        if form == "rect":
            values = [*quad.min(axis=0).tolist(), *quad.max(axis=0).tolist()]
        else:
            values = quad.reshape(-1).tolist()
            problem = quad_problem(quad.tolist())
            if problem is not None:
                raise PredictionError(
                    f"results for image {image_id!r}, detection {index}: once rounded to integer pixels, {problem[0]}",
                    "drop such detections before writing, or write form='rect' (the bounding rectangles)",
                )
        text = ",".join(str(value) for value in values)
        lines.append(f"{text},{score:.6f}" if with_confidence else text)
    return "".join(line + "\n" for line in lines)


def write_rrc_results(
    dest: str | Path, results: Mapping[str, Any], form: str = "quad", with_confidence: bool = False
) -> Path:
    """Write detections per image id as `res_<id>.txt` files into a zip archive (`dest` ending in .zip)
    or a new or empty folder, in the form the official RRC site accepts.

    `results` maps image ids to `ImageDet` or `harness.contract.TextPolygons` (4-point polygons). Corners
    are rounded to integers as the scorers do; quads are written clockwise on screen (the site refuses
    other orders), rectangles as `xmin,ymin,xmax,ymax` of the integer corners; a quad whose integer corners
    have zero area or cross (which `read_rrc_results` would refuse) is a `PredictionError`. Every image gets
    a file, empty when nothing was detected. The official scripts read confidences only in their AP mode and
    otherwise refuse them, hence `with_confidence=False` by default. Zip entries carry a fixed date so that
    the same results give the same bytes.
    """
    if form not in GT_FORMATS:
        raise ValueError(f"form must be 'quad' or 'rect', got {form!r}")
    contents = {}
    for image_id, detections in results.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", image_id):
            raise PredictionError(
                f"image id {image_id!r} cannot name an RRC file",
                "use ids of letters, digits, _ and - (the RRC site expects img_<N>)",
            )
        contents[f"res_{image_id}.txt"] = _result_lines(detections, image_id, form, with_confidence)
    dest = Path(dest)
    if dest.suffix.lower() == ".zip":
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, text in contents.items():
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text.encode("utf-8"))
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PredictionError(
            f"{dest}: exists and is not an empty folder; stale result files would be scored with the new",
            "write to a new folder or to a .zip path",
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (dest / name).write_text(text, encoding="utf-8")
    return dest


def score_text(
    gt_source: str | Path, res_source: str | Path, gt_form: str = "auto", deteval_form: str | None = None
) -> dict[str, float]:
    """Score a results folder or zip against a ground-truth folder or zip with both protocols.

    Returns `deteval_precision`, `deteval_recall`, `deteval_hmean` (DetEval in `deteval_form`, by default
    the ground truth's: "rect" for ICDAR2013 files, "quad" for ICDAR2015 ones) and `iou_precision`,
    `iou_recall`, `iou_hmean` (ICDAR2015 IoU).
    """
    truth = read_rrc_ground_truth(gt_source, gt_form)
    results = read_rrc_results(res_source, image_ids=truth.images)
    gt = list(truth.images.values())
    det = [results.get(image_id, ImageDet.empty()) for image_id in truth.images]
    return {**deteval(gt, det, deteval_form or truth.form), **icdar15(gt, det)}
