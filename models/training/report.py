"""An exploratory report of a face dataset: how many photos each identity has, and what its faces look like.

`build_report` writes into one folder:

- `report.md`: one Markdown page showing everything below, with summary tables;
- `photos_per_identity.png`: histogram of photos per identity (of the whole dataset);
- `hist_<attribute>.png`: one histogram per face attribute (of the measured photos);
- `correlation.png`: Spearman rank correlations between the attributes;
- `faces.csv`: one row per measured photo: path, identity, whether a face was found (and if not, why), the
  photo's size and every attribute (empty where no face was found).

Face attributes, measured on the main face (`models.detect.main_face`) that MTCNN finds in each photo:

- `face_px`: width of the detector's box, pixels of the photo as decoded;
- `score`: detector confidence, 0..1;
- `yaw`: the nose's offset from the eye midpoint along the eye line, over the inter-ocular distance
  (`yaw_ratio`): a ratio, 0 for a frontal face, about +-0.5 when the nose tip lies level with an eye;
- `roll_deg`: angle of the line from the left to the right eye against the horizontal (`roll_degrees`),
  degrees, positive clockwise on screen;
- `brightness`: mean grey level of the aligned 112x112 chip, 0..255;
- `contrast`: standard deviation of that grey level, grey levels;
- `sharpness`: variance of the 3x3 Laplacian of that grey chip, grey levels squared.

The chip is cut with `models.align.align`, the geometry training and indexing use; where the face reaches
past the photo's edge the chip has black margins, which lower brightness and raise contrast.

Detection batches photos of equal size: photos that fit are centred on a black square canvas (192 px by
default, as the training chip cache does), so loose crops of varied sizes share one MTCNN batch and tight
crops get a margin; landmarks are mapped back to the photo.

Plots use matplotlib's Agg canvas (no display, no pyplot state); matplotlib is imported only when a report
is built.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from models.align import align
from models.training.chips import on_canvas, shift_face  # the same canvas and mapping back as chip_photos
from models.training.datasets import Dataset
from models.detect import Detector, main_face
from models.faces import Face
from models.files import write_atomic
from models.image import ImageError, read_image

# The side of the black square small photos are centred on before detection: the training chip cache's
# (scripts/build_chips.py), so the report sees the faces that training gets.
DEFAULT_CANVAS = 192

# report.md lists at most this many photos without a face (and missing photos); faces.csv has them all
MAX_LISTED = 1000


@dataclass(frozen=True)
class Attribute:
    """One measured face attribute: its CSV column, a title, its unit, and whether to plot it on a log axis."""

    column: str
    title: str
    unit: str
    log: bool = False


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("face_px", "face size (box width)", "pixels"),
    Attribute("score", "detector score", "0..1"),
    Attribute("yaw", "yaw (nose offset / inter-ocular distance)", "ratio, 0 = frontal"),
    Attribute("roll_deg", "roll (eye line angle)", "degrees"),
    Attribute("brightness", "brightness (mean grey of the chip)", "grey level 0..255"),
    Attribute("contrast", "contrast (std of grey of the chip)", "grey levels"),
    Attribute("sharpness", "sharpness (variance of the Laplacian of the grey chip)", "grey levels squared", True),
)


@dataclass(frozen=True)
class FaceMeasure:
    """What the report measured of one photo; the attributes are NaN where no face was found."""

    path: str
    identity: str
    found: bool
    reason: str  # why no face was measured; empty when one was
    photo_width_px: int  # 0 when the photo could not be read
    photo_height_px: int
    faces: int  # faces MTCNN found in the photo
    face_px: float
    score: float
    yaw: float
    roll_deg: float
    brightness: float
    contrast: float
    sharpness: float


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(FaceMeasure))


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Horizontal turn of a face from its five landmarks (left eye, right eye, nose, mouth corners), as a ratio.

    With eyes L, R, nose N, eye midpoint M = (L + R) / 2 and eye vector e = R - L:
    yaw = ((N - M) . e) / |e|^2, the nose's offset from the eye midpoint along the eye line in units of the
    inter-ocular distance. 0 for a frontal face; positive when the nose lies towards the eye on the image's
    right; about +-0.5 when the nose tip is level with an eye (a strong turn). The measure does not change
    with the face's size or in-plane rotation. NaN when the eyes coincide.

    >>> yaw_ratio(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float))
    0.0
    >>> yaw_ratio(np.array([[30, 40], [70, 40], [60, 60], [35, 80], [65, 80]], float))  # nose 10 px right of 50
    0.25
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left, right, nose = lm[0], lm[1], lm[2]
    eye = right - left
    span = float(eye @ eye)
    if span == 0.0:
        return math.nan
    return float((nose - (left + right) / 2) @ eye / span)


def roll_degrees(landmarks: np.ndarray) -> float:
    """In-plane rotation of a face: the angle of the line from the left to the right eye against the image's
    horizontal, in degrees, positive when the right eye lies lower (image y grows downwards), i.e. the face is
    turned clockwise on screen. Range -180..180; upright faces give a few degrees.

    >>> roll_degrees(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float))
    0.0
    >>> roll_degrees(np.array([[30, 40], [70, 80], [50, 60], [35, 80], [65, 80]], float))  # right eye 40 px lower
    45.0
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    dx, dy = lm[1] - lm[0]
    return float(math.degrees(math.atan2(dy, dx)))


def chip_quality(chip: np.ndarray) -> tuple[float, float, float]:
    """(brightness, contrast, sharpness) of an RGB uint8 chip: mean and standard deviation of its grey level
    (0..255), and the variance of the 3x3 Laplacian of the grey image (grey levels squared).

    >>> chip_quality(np.full((4, 4, 3), 100, np.uint8))
    (100.0, 0.0, 0.0)
    """
    grey = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(grey.mean()), float(grey.std()), float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure_face(image: np.ndarray, face: Face) -> dict[str, float]:
    """The attributes of `face` in `image` (RGB uint8), keyed by the columns of `ATTRIBUTES`."""
    brightness, contrast, sharpness = chip_quality(align(image, face))
    return {
        "face_px": float(face.box.width),
        "score": float(face.score),
        "yaw": yaw_ratio(face.landmarks),
        "roll_deg": roll_degrees(face.landmarks),
        "brightness": brightness,
        "contrast": contrast,
        "sharpness": sharpness,
    }


def measure_faces(paths: Sequence[str | Path], identities: Sequence[str], detector: Detector,
                  canvas: int = DEFAULT_CANVAS, chunk: int = 256,
                  progress: Callable[[int], None] | None = None) -> list[FaceMeasure]:
    """Detect the main face of each photo and measure it; one FaceMeasure per photo, in order.

    Photos are read and detected `chunk` at a time (memory stays bounded); `progress`, if given, is called
    with the number of photos finished after each chunk. An unreadable photo or one without a face gives a
    row with `found` False and the reason; it never stops the others.
    """
    if len(paths) != len(identities):
        raise ValueError(f"{len(paths)} paths but {len(identities)} identities")
    no_face = (f"no face found by MTCNN (score >= {getattr(detector, 'min_score', '?')}, "
               f"face >= {getattr(detector, 'min_face_px', '?')} px, canvas {canvas} px)")
    rows: list[FaceMeasure] = []
    for start in range(0, len(paths), chunk):
        part = list(range(start, min(start + chunk, len(paths))))
        images: dict[int, np.ndarray] = {}
        reasons: dict[int, str] = {}
        for i in part:
            try:
                images[i] = read_image(paths[i])
            except ImageError as e:
                reasons[i] = f"unreadable: {e}"
        placed = {i: on_canvas(img, canvas) for i, img in images.items()}
        readable = [i for i in part if i in images]
        found = dict(zip(readable, detector.detect([placed[i][0] for i in readable])))
        for i in part:
            nan = dict.fromkeys((a.column for a in ATTRIBUTES), math.nan)
            if i not in images:
                rows.append(FaceMeasure(str(paths[i]), identities[i], False, reasons[i], 0, 0, 0, **nan))
                continue
            image = images[i]
            h, w = image.shape[:2]
            ox, oy = placed[i][1]
            faces = [shift_face(f, -ox, -oy) for f in found[i]]
            face = main_face(faces, w, h)
            if face is None:
                rows.append(FaceMeasure(str(paths[i]), identities[i], False, no_face, w, h, 0, **nan))
            else:
                rows.append(FaceMeasure(str(paths[i]), identities[i], True, "", w, h, len(faces),
                                        **measure_face(image, face)))
        if progress is not None:
            progress(len(part))
    return rows


def sample_indices(n: int, max_photos: int | None, seed: int) -> np.ndarray:
    """Indices of the photos to measure: all n, or a seeded sample of `max_photos` of them in dataset order.

    >>> sample_indices(5, None, seed=0).tolist()
    [0, 1, 2, 3, 4]
    >>> len(sample_indices(100, 10, seed=0)), bool((np.diff(sample_indices(100, 10, seed=0)) > 0).all())
    (10, True)
    """
    if max_photos is not None and max_photos < 1:
        raise ValueError(f"max_photos must be at least 1, got {max_photos}")
    if max_photos is None or max_photos >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_photos, replace=False))


@dataclass(frozen=True)
class Summary:
    """Summary statistics of one column of numbers; NaNs are left out (count says how many remain)."""

    count: int
    mean: float
    std: float
    min: float
    p5: float
    median: float
    p95: float
    max: float


def summarise(values: Sequence[float] | np.ndarray) -> Summary:
    """Count, mean, standard deviation, min, 5th percentile, median, 95th percentile and max of `values`.

    >>> summarise([1, 2, 3, float("nan")]).median
    2.0
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Summary(0, *([math.nan] * 7))
    p5, median, p95 = np.percentile(v, [5, 50, 95])
    return Summary(len(v), float(v.mean()), float(v.std()), float(v.min()), float(p5), float(median), float(p95),
                   float(v.max()))


def rank_correlation(table: np.ndarray) -> np.ndarray:
    """(k, k) Spearman rank correlation of the k columns of `table` (rows with any NaN left out, ties given
    their mean rank); NaN where a column is constant or fewer than 3 rows remain.

    >>> rank_correlation(np.array([[1, 10, 3], [2, 20, 2], [3, 35, 1]], float)).round(3).tolist()
    [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    """
    t = np.asarray(table, dtype=np.float64)
    t = t[np.isfinite(t).all(axis=1)]
    k = t.shape[1]
    if len(t) < 3:
        return np.full((k, k), math.nan)
    ranks = np.column_stack([_mean_ranks(t[:, j]) for j in range(k)])
    centred = ranks - ranks.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = centred.T @ centred / np.outer(norms, norms)
    corr[~np.isfinite(corr)] = math.nan
    return np.clip(corr, -1.0, 1.0)


def _mean_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def build_report(dataset: Dataset, out_dir: str | Path, detector: Detector | None = None,
                 max_photos: int | None = None, seed: int = 0, canvas: int = DEFAULT_CANVAS,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Write the exploratory report of `dataset` into `out_dir` (created if needed); returns `report.md`.

    Photos per identity are counted over the whole dataset; faces are measured on all photos, or on a seeded
    sample of `max_photos` (`sample_indices`). `detector` defaults to a new MTCNN `Detector`; `progress` is
    called with the number of photos finished after each chunk. Files already in `out_dir` with the report's
    names are replaced; each is written beside its target and renamed into place.
    """
    if len(dataset) == 0:
        raise ValueError(f"{dataset.root}: the dataset holds no photos; there is nothing to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    detector = detector or Detector()
    chosen = sample_indices(len(dataset), max_photos, seed)
    paths = [dataset.paths[i] for i in chosen]
    names = [dataset.identities[dataset.labels[i]] for i in chosen]
    rows = measure_faces(paths, names, detector, canvas=canvas, progress=progress)

    per_identity = np.bincount(np.asarray(dataset.labels, dtype=np.int64), minlength=len(dataset.identities))
    _plot_per_identity(per_identity, out / "photos_per_identity.png")
    table = np.array([[getattr(r, a.column) for a in ATTRIBUTES] for r in rows], dtype=np.float64)
    table = table.reshape(len(rows), len(ATTRIBUTES))
    found = np.array([r.found for r in rows], dtype=bool)
    for j, attribute in enumerate(ATTRIBUTES):
        _plot_histogram(table[found, j], attribute, out / f"hist_{attribute.column}.png")
    corr = rank_correlation(table[found])
    _plot_correlation(corr, out / "correlation.png")
    _write_csv(rows, out / "faces.csv")
    page = _markdown(dataset, rows, per_identity, table, found, corr, max_photos, seed, canvas, detector)
    write_atomic(out / "report.md", page)
    return out / "report.md"


# -- writing -------------------------------------------------------------------------------------------------------


def _write_csv(rows: list[FaceMeasure], target: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in astuple(r)])
    write_atomic(target, buffer.getvalue())


def _figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas: renders to PNG without a display or pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the dataset report draws its plots with matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, target: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_atomic(target, buffer.getvalue())


def _plot_per_identity(counts: np.ndarray, target: Path) -> None:
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    if len(counts):
        top = int(counts.max())
        bins = np.arange(0.5, top + 1.5, 1) if top <= 60 else 40
        ax.hist(counts, bins=bins, color="#4c72b0")
    ax.set_xlabel("photos per identity")
    ax.set_ylabel("identities")
    ax.set_title(f"Photos per identity ({len(counts)} identities)")
    _save(fig, target)


def _plot_histogram(values: np.ndarray, attribute: Attribute, target: Path) -> None:
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    v = values[np.isfinite(values)]
    if len(v) == 0:
        ax.text(0.5, 0.5, "no face measured", ha="center", va="center", transform=ax.transAxes)
    elif attribute.log and (v > 0).all() and v.max() > v.min():
        ax.hist(v, bins=np.geomspace(v.min(), v.max(), 31), color="#4c72b0")
        ax.set_xscale("log")
    else:
        ax.hist(v, bins=30, color="#4c72b0")
    if len(v):
        ax.axvline(float(np.median(v)), color="#c44e52", linestyle="--", label=f"median {np.median(v):.3g}")
        ax.legend(loc="upper right")
    ax.set_xlabel(f"{attribute.column} ({attribute.unit})")
    ax.set_ylabel("faces")
    ax.set_title(f"{attribute.title}, {len(v)} faces")
    _save(fig, target)


def _plot_correlation(corr: np.ndarray, target: Path) -> None:
    fig = _figure(6, 5)
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(corr, nan=0.0), vmin=-1, vmax=1, cmap="coolwarm")
    names = [a.column for a in ATTRIBUTES]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            text = "n/a" if math.isnan(corr[i, j]) else f"{corr[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="Spearman rank correlation")
    ax.set_title("Correlation of face attributes")
    _save(fig, target)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _shown_path(path: str | Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _markdown(dataset: Dataset, rows: list[FaceMeasure], per_identity: np.ndarray, table: np.ndarray,
              found: np.ndarray, corr: np.ndarray, max_photos: int | None, seed: int, canvas: int,
              detector: Detector) -> str:
    n = len(rows)
    lines = [f"# Dataset report: {dataset.root.name or dataset.root}", ""]
    sampled = (f"a seeded sample of {n} photos (seed {seed})" if max_photos is not None and n < len(dataset)
               else f"all {n} photos")
    lines += [f"`{dataset.root}`: {len(dataset)} photos of {len(dataset.identities)} identities. "
              f"Faces were measured on {sampled}.", ""]

    s = summarise(per_identity)
    lines += ["## Photos per identity", "",
              "| identities | photos | mean | median | min | max | with 2 or more | with 5 or more |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
              f"| {len(per_identity)} | {len(dataset)} | {_fmt(s.mean)} | {_fmt(s.median)} | {_fmt(s.min)} | "
              f"{_fmt(s.max)} | {int((per_identity >= 2).sum())} | {int((per_identity >= 5).sum())} |", "",
              "![photos per identity](photos_per_identity.png)", ""]

    share = f" ({100.0 * found.sum() / n:.1f} %)" if n else ""
    lines += ["## Faces found", "",
              f"MTCNN found a face in {int(found.sum())} of {n} measured photos{share}; minimum score "
              f"{getattr(detector, 'min_score', '?')}, minimum face {getattr(detector, 'min_face_px', '?')} px, "
              f"photos up to {canvas} px centred on a black {canvas} px canvas. Where a photo shows several "
              f"faces the main one is measured (the largest, nearest the centre); "
              f"{sum(r.faces > 1 for r in rows)} photos show more than one.", ""]

    lines += ["## Face attributes", "",
              "Measured on the main face of each photo where one was found; the aligned chip is the 112x112 "
              "crop training and indexing use.", "",
              "| attribute | unit | count | mean | std | min | 5 % | median | 95 % | max |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for j, a in enumerate(ATTRIBUTES):
        t = summarise(table[found, j])
        lines.append(f"| `{a.column}` | {a.unit} | {t.count} | {_fmt(t.mean)} | {_fmt(t.std)} | {_fmt(t.min)} | "
                     f"{_fmt(t.p5)} | {_fmt(t.median)} | {_fmt(t.p95)} | {_fmt(t.max)} |")
    lines += ["",
              "- `yaw` = ((nose - eye midpoint) . (right eye - left eye)) / |right eye - left eye|^2: the nose's "
              "offset along the eye line in inter-ocular distances; 0 frontal, about +-0.5 with the nose level "
              "with an eye; positive towards the image's right.",
              "- `roll_deg`: angle of the left-to-right eye line against the horizontal, degrees, positive "
              "clockwise on screen.",
              "- `brightness`, `contrast`: mean and standard deviation of the chip's grey level (0..255); "
              "`sharpness`: variance of its 3x3 Laplacian (grey levels squared; plotted on a log axis).", ""]
    for a in ATTRIBUTES:
        lines += [f"### {a.title}", "", f"![{a.column}](hist_{a.column}.png)", ""]

    names = [a.column for a in ATTRIBUTES]
    lines += ["## Correlation of attributes", "",
              f"Spearman rank correlation over the {int(found.sum())} measured faces (n/a: a constant attribute "
              "or fewer than 3 faces).", "", "![correlation](correlation.png)", "",
              "| | " + " | ".join(f"`{c}`" for c in names) + " |",
              "| --- |" + " ---: |" * len(names)]
    for i, c in enumerate(names):
        lines.append(f"| `{c}` | " + " | ".join(_fmt(v) if not math.isnan(v) else "n/a" for v in corr[i]) + " |")
    lines.append("")

    missed = [r for r in rows if not r.found]
    lines += ["## Photos with no face", ""]
    if missed:
        more = (f" (the first {MAX_LISTED} are shown; `faces.csv` has them all, `found` False)"
                if len(missed) > MAX_LISTED else "")
        lines += [f"{len(missed)} of {n} measured photos{more}:", "",
                  "| photo | identity | reason |", "| --- | --- | --- |"]
        lines += [f"| {_cell(_shown_path(r.path, dataset.root))} | {_cell(r.identity)} | {_cell(r.reason)} |"
                  for r in missed[:MAX_LISTED]]
    else:
        lines.append("None: a face was found in every measured photo.")
    lines.append("")
    if dataset.missing:
        lines += ["## Photos missing from disk", "",
                  f"{len(dataset.missing)} photos named by the dataset's identity file are not on disk:", ""]
        lines += [f"- {_cell(_shown_path(p, dataset.root))}" for p in dataset.missing[:MAX_LISTED]]
        if len(dataset.missing) > MAX_LISTED:
            lines.append(f"- ... and {len(dataset.missing) - MAX_LISTED} more")
        lines.append("")

    lines += ["## Files", "",
              "- `faces.csv`: one row per measured photo: " + ", ".join(f"`{c}`" for c in CSV_COLUMNS)
              + " (attributes empty where no face was found).",
              "- `photos_per_identity.png`, `hist_<attribute>.png`, `correlation.png`: the plots above.", ""]
    return "\n".join(lines)
