"""Drawing on photos: the boxes and names of `who --annotate`, the contact sheets of `clusters --sheets`, and
writing what is drawn (`encoded`, then `models.files.write_atomic`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from facesearch import home
from facesearch.answers import UNKNOWN, PhotoAnswer
from facesearch.config import Config
from facesearch.errors import BadOutputPath
from indexer import PHOTO_SUFFIXES, is_photo
from indexer.library import ClusterSummary
from indexer.pipeline import FaceExtractor
from models.files import write_atomic
from models.image import ImageError, read_image


def label_place(box: tuple[int, int, int, int], label_w: int, label_h: int,
                size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a face's label goes (x, y, width, height) in a photo of `size` (w, h): above the box when there is
    room, else below it, else inside its top; moved left, and cut to the photo's width, so that it stays in
    the photo."""
    x0, y0, x1, y1 = box
    w, h = size
    label_w, label_h = min(label_w, w - 1), min(label_h, h - 1)
    if y0 - label_h >= 0:
        y = y0 - label_h
    elif y1 + label_h <= h - 1:
        y = y1
    else:
        y = max(0, min(y0, h - 1 - label_h))
    x = max(0, min(x0, w - 1 - label_w))
    return x, y, label_w, label_h


def encoded(image, suffix: str, **options) -> bytes:
    """A PIL image as the bytes of the format its file name's suffix names (ValueError for an unknown one)."""
    import io

    from PIL import Image

    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown file extension: {suffix or '(none)'}")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def annotate(answers: Sequence[PhotoAnswer], out: str | Path) -> list[Path]:
    """Draw each answered photo with its boxes and names; returns the files written.

    For one photo `out` is the file to write (its suffix chooses the format) unless it is an existing folder;
    for several it is a folder (created), where each photo keeps its name.
    """
    from PIL import Image, ImageDraw, ImageFont

    out = Path(out).expanduser()
    answered = [a for a in answers if a.error is None]
    if len(answers) > 1 and not out.is_dir() and is_photo(out):
        raise BadOutputPath(f"{out}: a photo's name, but {len(answers)} photos were asked about: --annotate "
                            "wants a folder for several photos (it is created)")
    if len(answers) == 1 and not out.is_dir():
        if not is_photo(out):
            raise BadOutputPath(f"{out}: give the annotated photo a photo suffix "
                                f"({', '.join(sorted(PHOTO_SUFFIXES))})")
        targets = [out] if answered else []
    else:
        if out.exists() and not out.is_dir():
            raise BadOutputPath(f"{out}: a file; with several photos --annotate wants a folder")
        used: set[str] = set()
        targets = []
        for a in answered:
            name = a.photo.name
            n = 1
            while name in used:
                name = f"{a.photo.stem}-{n}{a.photo.suffix}"
                n += 1
            used.add(name)
            targets.append(out / name)
    written = []
    for a, target in zip(answered, targets):
        image = Image.fromarray(read_image(a.photo))
        draw = ImageDraw.Draw(image)
        side = max(image.size)
        width = max(2, side // 250)
        for face in a.faces:
            colour = (40, 200, 60) if face.name != UNKNOWN else (230, 60, 40)
            x0, y0, x1, y1 = face.box.as_list()
            draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
            label = face.name if face.distance is None else f"{face.name} {face.distance:.2f}"
            # the largest font (up to a 45th of the photo's side) whose label fits across the photo
            for size in range(max(12, side // 45), 5, -1):
                font = ImageFont.load_default(size=size)
                left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
                if right - left + 2 * width <= image.size[0]:
                    break
            lx, ly, lw, lh = label_place((x0, y0, x1, y1), right - left + 2 * width, bottom - top + 2 * width,
                                         image.size)
            draw.rectangle([lx, ly, lx + lw, ly + lh], fill=colour)
            draw.text((lx + width - left, ly + width - top), label, fill=(255, 255, 255), font=font)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, encoded(image, target.suffix))
        except (OSError, ValueError) as e:
            raise BadOutputPath(f"{target}: cannot write the annotated photo ({e})") from None
        written.append(target)
    return written


def contact_sheets(summaries: Sequence[ClusterSummary], out_dir: str | Path, config: Config, *,
                   faces_per_sheet: int = 48, tile_px: int = 112, extractor: FaceExtractor | None = None,
                   on_error: Callable[[str], None] | None = None) -> list[Path]:
    """Write one JPEG per cluster into `out_dir` (created): `cluster-<id>.jpg`, a grid of its most typical
    faces, each cut from its photo with a margin. A photo that cannot be read any more gives a grey tile and
    a message to `on_error`; the sheet is still written."""
    from PIL import Image, ImageDraw

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise BadOutputPath(f"{out}: exists and is not a folder; contact sheets are written into a folder")
    out.mkdir(parents=True, exist_ok=True)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        stored = gallery.faces(i for c in summaries for i in c.face_ids[:faces_per_sheet])
    written = []
    for c in summaries:
        shown = [stored[i] for i in c.face_ids[:faces_per_sheet] if i in stored]
        columns = min(8, max(1, len(shown)))
        rows = -(-len(shown) // columns)
        sheet = Image.new("RGB", (columns * tile_px, rows * tile_px + 24), (255, 255, 255))
        ImageDraw.Draw(sheet).text((4, rows * tile_px + 6), f"cluster {c.id}: {c.size} faces", fill=(0, 0, 0))
        by_photo: dict[str, list[int]] = {}
        for n, face in enumerate(shown):
            by_photo.setdefault(face.photo_path, []).append(n)
        for path, slots in by_photo.items():
            try:
                image = Image.fromarray(read_image(path))
            except (ImageError, OSError) as e:
                if on_error is not None:
                    on_error(f"{path}: {e}")
                image = None
            for n in slots:
                tile = Image.new("RGB", (tile_px, tile_px), (128, 128, 128))
                if image is not None:
                    box = shown[n].box
                    margin = 0.25 * max(box.width, box.height)
                    side = max(box.width, box.height) + 2 * margin
                    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
                    crop = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
                    tile = image.crop(crop).resize((tile_px, tile_px), Image.Resampling.BILINEAR)
                sheet.paste(tile, ((n % columns) * tile_px, (n // columns) * tile_px))
        target = out / f"cluster-{c.id}.jpg"
        write_atomic(target, encoded(sheet, ".jpg", quality=88))
        written.append(target)
    return written
