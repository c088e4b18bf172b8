"""What the 8-bit graph costs and buys: the shipped extractor as the engine runs it (`extractor.onnx`) against the
same network in float, on the validation identities of its run and on LFW View 2.

    python scripts/quantization_check.py --run runs/requantize [--weights models/weights/extractor.keras]
    git show 00f0f99:models/weights/extractor.onnx > /tmp/q8.onnx    # the earlier full-range 8-bit graph
    python scripts/quantization_check.py --run runs/requantize --also /tmp/q8.onnx

The float network is the graph of `extractor.keras` made in memory (`models/training/export.py`; needs TensorFlow to
read the `.keras` file). Prints, for each: aligned faces embedded per second (batches of 256, mirror images
included as the model's flip setting says), the validation TAR at FAR 1e-3 and 1e-2, LFW View 2 accuracy and
TAR, and the cosine between each graph's vectors and the float network's, per validation photo. `--also`
adds other graphs of the same network (e.g. one quantized another way) to the comparison. The run folder
gives the split (its split.csv and config.json): that of the run the model came from, or the folder
`scripts/requantize.py` measured in.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

import numpy as np  # noqa: E402

from models.training.chips import load_cache  # noqa: E402
from models.training.evaluate import calibrate, embed_chipset, evaluate_lfw  # noqa: E402
from models.extractor import DEFAULT_MODEL  # noqa: E402
from models.training.export import open_extractor  # noqa: E402
from models.training.runs import lfw_chips, split_chips  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--run", required=True, type=Path, help="the training run the shipped model came from")
    ap.add_argument("--weights", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--also", type=Path, nargs="*", default=[], metavar="GRAPH.onnx",
                    help="other graphs of the same network to compare (weights and flip setting from --weights)")
    args = ap.parse_args()
    chips_dir = Path(json.loads((args.run / "config.json").read_text())["chips"])  # the run's training chips
    val, names = split_chips(args.run, load_cache(chips_dir), "val")
    labels = np.unique(names, return_inverse=True)[1]
    engine = open_extractor(args.weights, batch_size=256)
    lfw = lfw_chips(Path(args.data), Path(args.chips), engine.info.chip)
    with tempfile.TemporaryDirectory() as tmp:
        graphs = [("8-bit graph (engine)", engine)]
        for i, path in enumerate([None, *args.also]):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            for suffix in (".keras", ".json"):
                shutil.copyfile(args.weights.with_suffix(suffix), folder / f"extractor{suffix}")
            if path is None:  # no .onnx beside: the float graph is made from the .keras file
                graphs.append(("float network", open_extractor(folder / "extractor.keras", batch_size=256)))
            else:
                shutil.copyfile(path, folder / "extractor.onnx")
                graphs.append((f"`{path}`", open_extractor(folder / "extractor.keras", batch_size=256)))
        rows, vectors = [], {}
        for label, extractor in graphs:
            extractor.embed(val.chips[:256])  # loaded and warm before the clock starts
            start = time.perf_counter()
            v = embed_chipset(extractor, val, progress=False)
            rate = len(v) / (time.perf_counter() - start)
            vectors[label] = v
            c = calibrate(v, labels)
            r = evaluate_lfw(extractor, Path(args.data) / "lfw", lfw, progress=False)
            rows.append((label, rate, c, r))
    print(f"model {engine.version}; {len(val.chips)} validation photos of "
          f"{len(set(names.tolist()))} identities, {r['photos']} LFW View 2 photos\n")
    print("| graph | faces/s (2 cores, flip as shipped) | validation TAR at FAR 1e-3 / 1e-2 | "
          "LFW accuracy | LFW TAR at FAR 1e-3 / 1e-2 | cosine to the float network's vectors: mean / lowest |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, rate, c, r in rows:
        cos = np.sum(vectors[label] * vectors["float network"], axis=1)
        print(f"| {label} | {rate:.0f} | {100 * c['tar_at_far_1e-3']:.2f} % / {100 * c['tar_at_far_1e-2']:.2f} % | "
              f"{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} % | "
              f"{100 * r['tar_at_far_1e-3']:.2f} % / {100 * r['tar_at_far_1e-2']:.2f} % | "
              f"{cos.mean():.4f} / {cos.min():.4f} |")


if __name__ == "__main__":
    main()
