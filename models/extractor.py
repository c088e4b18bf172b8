"""The extractor: aligned chips to L2-normalised vectors, with its model card metadata.

Distance everywhere in facesearch is the cosine distance between normalised vectors, `1 - a.b`, in [0, 2]
(`models/distance.py`).
The shipped model lives in `models/weights/`: `extractor.keras` (Keras 3 format: JSON config plus weights,
no pickle; what training resumes from), `extractor.onnx` (the same network as an ONNX graph, which the engine
runs on ONNX Runtime, so that answering never imports TensorFlow, nor anything of the training toolkit) and `extractor.json` (version, dimension,
calibrated thresholds, evaluation numbers, and the chip geometry it reads: side and landmark template, see
`models/align.py`; a model without one reads the 112 px chips of the baseline networks).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import DEFAULT_MODEL
from models.align import ARCFACE_112, ChipGeometry
from models.errors import ModelMissing


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about an extractor, read from the JSON file beside its weights."""

    version: str  # unique name of these weights, stored with every vector
    dim: int
    threshold: float  # cosine distance under which two faces are called the same person
    threshold_far: float  # the false-accept rate `threshold` was calibrated for
    flip: bool = True  # average the embeddings of the chip and its mirror image
    extra: dict = field(default_factory=dict)
    chip: ChipGeometry = ARCFACE_112  # the chips it reads


def read_info(weights: Path) -> ModelInfo:
    meta = weights.with_suffix(".json")
    if not meta.exists():
        raise ModelMissing(f"{meta}: model metadata missing (it is written by `facesearch train`)")
    try:
        raw = json.loads(meta.read_text())
        return ModelInfo(
            version=str(raw["version"]), dim=int(raw["dim"]), threshold=float(raw["threshold"]),
            threshold_far=float(raw["threshold_far"]), flip=bool(raw.get("flip", True)),
            extra={k: v for k, v in raw.items()
                   if k not in {"version", "dim", "threshold", "threshold_far", "flip", "chip"}},
            chip=ChipGeometry.from_json(raw["chip"]) if "chip" in raw else ARCFACE_112,
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        why = f"no {e} entry" if isinstance(e, KeyError) else str(e)
        raise ModelMissing(f"{meta}: not readable as a model's metadata ({why})") from None


def preprocess(chips: np.ndarray) -> np.ndarray:
    """uint8 RGB chips to the network's float input in [-1, 1]."""
    return (np.asarray(chips, dtype=np.float32) - 127.5) / 128.0


class Extractor:
    """A trained network loaded once; `embed` maps (n, side, side, 3) uint8 chips (`info.chip`) to (n, dim) unit
    vectors."""

    def __init__(self, weights: str | Path = DEFAULT_MODEL, batch_size: int = 64, graph: bytes | None = None):
        """`weights`: the model's `.keras` path, whose `.onnx` and `.json` lie beside it (the `.keras` file itself
        is what training resumes from and may be left out). `graph`: the ONNX graph to run instead of the
        `.onnx` file, for the training toolkit's run folders that have none (`models.training.export.
        open_extractor` makes it in memory)."""
        self.weights = Path(weights)
        if graph is None and not self.weights.exists() and not self.weights.with_suffix(".onnx").exists():
            raise ModelMissing(f"{self.weights}: extractor weights missing (neither it nor its .onnx graph)")
        self.info = read_info(self.weights)
        self.batch_size = batch_size
        self._net = None
        source = self.weights.with_suffix(".onnx")
        if graph is None:
            # Read and checked here, so that a refused graph stops a command before its work starts; the bytes
            # checked are the bytes run, and nothing is read beside the file (`models/graph_check.py`).
            try:
                graph = source.read_bytes()
            except FileNotFoundError:
                raise ModelMissing(f"{source}: the extractor's graph is missing (a training run writes it beside "
                                   "its .keras file; `facesearch train --run DIR` finishes a run that has none)"
                                   ) from None
            except OSError as e:
                raise ModelMissing(f"{source}: cannot be read ({e.strerror or e})") from None
        from models.graph_check import check_graph

        check_graph(graph, str(source))
        self._graph: bytes | None = graph

    @property
    def version(self) -> str:
        return self.info.version

    def load(self) -> None:
        """Load the network now rather than on the first `embed`."""
        self._model()

    def _model(self):
        """The network on ONNX Runtime, from the graph read when the extractor was made. ONNX Runtime embedded
        8 chips and their mirror images in one call as fast as the TensorFlow graph it replaced, with the same
        output to 1e-5 (tests/test_extractor.py)."""
        if self._net is None:
            from models import runtime

            self._net = runtime.batch_session(self._graph)
            self._graph = None
            self._input = self._net.get_inputs()[0].name
        return self._net

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._model().run(None, {self._input: x})[0]

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(n, dim) float32 L2-normalised embeddings of (n, side, side, 3) uint8 RGB chips (side: `info.chip`)."""
        chips = np.asarray(chips)
        side = self.info.chip.size
        if chips.ndim != 4 or chips.shape[1:] != (side, side, 3):
            raise ValueError(f"embed wants (n, {side}, {side}, 3) chips, got {chips.shape}")
        if len(chips) == 0:
            return np.zeros((0, self.info.dim), np.float32)
        out = []
        for start in range(0, len(chips), self.batch_size):
            x = preprocess(chips[start:start + self.batch_size])
            if self.info.flip:  # the chips and their mirror images in one call
                both = self._run(np.ascontiguousarray(np.concatenate([x, x[:, :, ::-1, :]])))
                v = both[:len(x)] + both[len(x):]
            else:
                v = self._run(x)
            out.append(v)
        return normalise(np.concatenate(out).astype(np.float32))


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)

