"""Fit the five-point template that maps MTCNN's landmarks onto the chip dlib's face network was trained on.

    python scripts/fit_chip_template.py --photos 800

dlib's network expects the chips dlib cuts itself: its HOG detector, its 5-point shape predictor and
`get_face_chip_details(shape, size=150, padding=0.25)`, a similarity transform of the photo. facesearch detects
with MTCNN instead (it misses far fewer faces), so it needs the places in a 150 px chip where MTCNN's five
points (eyes, nose tip, mouth corners) fall when the chip is cut as dlib cuts it. This script measures them:

1. a seeded sample of training photos (`shared/data/train`, CelebA and Pins identities only: no LFW photo or
   identity, and no grey laboratory photos), each centred on a black 256 px square;
2. in each, dlib's HOG detector (one upsampling) and its 5-point predictor give the chip's transform, exactly as
   dlib computes it (`get_mapping_to_chip` in dlib's `image_transforms/interpolation.h`: the chip's corners
   are the corners of `details.rect` turned by `details.angle` about its centre); MTCNN gives its five points;
   photos where either finds no face, or more than one, are left out;
3. MTCNN's points are carried into chip coordinates by that transform, and the template is their mean over the
   photos; the script prints it with the spread around it and the mean error of aligning by it (the distance
   between the chip corners dlib would use and the ones the template gives, in chip pixels).

The result is the `DLIB_150` geometry of `models/align.py`. dlib is needed here only, once; the engine never
imports it.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

import numpy as np  # noqa: E402

CANVAS = 256
SIZE, PADDING = 150, 0.25


def chip_transform(details) -> np.ndarray:
    """The 2x3 matrix taking photo coordinates to chip coordinates, as dlib's get_mapping_to_chip makes it."""
    from models.align import similarity_transform

    r = details.rect
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    turn = np.array([[c, -s], [s, c]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
    src = (corners - centre) @ turn.T + centre
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], np.float64)
    return similarity_transform(src, dst)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--photos", type=int, default=800, help="photos sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import dlib
    import face_recognition_models as frm

    from models.align import similarity_transform
    from models.training.chips import on_canvas
    from models.training.datasets import load_folders
    from models.detect import Detector
    from models.image import read_image

    photos = [p for p in load_folders(Path(args.data) / "train").paths
              if p.parent.name.startswith(("celeba-", "pins-"))]
    rng = np.random.default_rng(args.seed)
    sample = [photos[i] for i in sorted(rng.choice(len(photos), min(args.photos, len(photos)), replace=False))]
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    detector = Detector()
    boards = [on_canvas(read_image(p), CANVAS)[0] for p in sample]
    found = detector.detect(boards)
    points, transforms = [], []
    for board, faces in zip(boards, found):
        dets = hog(board, 1)
        if len(faces) != 1 or len(dets) != 1:
            continue
        details = dlib.get_face_chip_details(predictor(board, dets[0]), size=SIZE, padding=PADDING)
        m = chip_transform(details)
        transforms.append(m)
        points.append(faces[0].landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2])
    points = np.array(points)
    template = points.mean(0)
    spread = np.linalg.norm(points - template, axis=2).mean(0)
    # how far the chips cut by the template are from dlib's own: its corners, mapped both ways
    corners = np.array([[0, 0], [SIZE - 1, 0], [SIZE - 1, SIZE - 1], [0, SIZE - 1]], np.float64)
    errors = []
    for m, p in zip(transforms, points):
        ours = similarity_transform(p, template)  # chip (as dlib cut it) -> chip cut by the template
        errors.append(np.linalg.norm(corners @ ours[:, :2].T + ours[:, 2] - corners, axis=1).mean())
    print(f"{len(points)} of {len(sample)} photos had one face for both detectors")
    print("template (x, y in a 150 px chip: left eye, right eye, nose, left mouth corner, right mouth corner):")
    for x, y in template:
        print(f"    [{x:.4f}, {y:.4f}],")
    print("mean distance of each point from it (px):", np.round(spread, 2).tolist())
    print(f"chip corners, template against dlib's own cut: {np.mean(errors):.2f} px on average "
          f"({np.percentile(errors, 90):.2f} at the 90th percentile)")


if __name__ == "__main__":
    main()
