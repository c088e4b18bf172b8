"""The networks as ONNX graphs, so that detecting and embedding run on ONNX Runtime instead of TensorFlow.

TensorFlow takes about 4.5 s to import on this project's 2-core machine, more than the rest of a cold
`facesearch who` together (docs/benchmarks.md, "Speed"); ONNX Runtime imports in 0.15 s. TensorFlow stays what the
extractor is trained with; these graphs carry the same weights to run time:

- `mtcnn_graph(name)` (here): MTCNN's P-Net, R-Net or O-Net, built from the weight files that ship inside the
  `mtcnn` package (read without importing it, since importing it imports TensorFlow).
- the extractor's graph is written by the training toolkit (`models/training/export.py`, with the
  `GraphBuilder` below) beside its `.keras` file, and read by the engine as a file (`models/extractor.py`).

Graphs take NHWC float32 input, as the Keras networks do, and turn it to ONNX's NCHW once at the start.
Building a graph needs the `onnx` package; running one needs only `onnxruntime`.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from models.files import write_atomic

OPSET = 17


class GraphBuilder:
    """Nodes and weights of one ONNX graph, added in order; `to_bytes` gives the serialised model."""

    def __init__(self):
        self.nodes: list = []
        self.weights: list = []
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_{self._n}"

    def const(self, array: np.ndarray, kind: str = "w") -> str:
        from onnx import numpy_helper

        name = self._name(kind)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> str | list[str]:
        from onnx import helper

        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    # layers, NCHW inside the graph; kernels come in Keras's (kh, kw, in, out) layout
    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, stride: int, same: bool,
             groups: int = 1) -> str:
        w = np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32)  # -> (out, in/groups, kh, kw)
        inputs = [x, self.const(w)] + ([self.const(bias.astype(np.float32))] if bias is not None else [])
        return self.op("Conv", inputs, kernel_shape=list(kernel.shape[:2]), strides=[stride, stride],
                       auto_pad="SAME_UPPER" if same else "VALID", group=groups)

    def prelu(self, x: str, alpha: np.ndarray, channels_first: bool = True) -> str:
        """x where x > 0, alpha * x elsewhere, per channel. With every slope at most 1 that is max(x, alpha * x),
        the same numbers in two ops that ONNX Runtime runs faster than its PRelu (in the extractor's 8-bit
        graph 14 % of the time against 22 %, `bench/embed_throughput.py --profile`). The first PReLU of
        MTCNN's P-Net and of its R-Net has slopes above 1 and stays a PRelu."""
        a = np.asarray(alpha, np.float32).reshape(-1)
        slope = self.const(a.reshape(-1, 1, 1) if channels_first else a)
        if a.max() <= 1.0:
            return self.op("Max", [x, self.op("Mul", [x, slope])])
        return self.op("PRelu", [x, slope])

    def max_pool(self, x: str, size: int, stride: int, same: bool) -> str:
        # SAME_UPPER puts the odd padding row at the end, where TensorFlow puts it
        return self.op("MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride],
                       auto_pad="SAME_UPPER" if same else "VALID")

    def batch_norm(self, x: str, gamma, beta, mean, var, epsilon: float) -> str:
        ws = [self.const(np.asarray(a, np.float32)) for a in (gamma, beta, mean, var)]
        return self.op("BatchNormalization", [x, *ws], epsilon=float(epsilon))

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray | None) -> str:
        y = self.op("MatMul", [x, self.const(kernel.astype(np.float32))])
        return self.op("Add", [y, self.const(bias.astype(np.float32))]) if bias is not None else y

    def to_nchw(self, x: str) -> str:
        return self.op("Transpose", [x], perm=[0, 3, 1, 2])

    def to_nhwc(self, x: str) -> str:
        return self.op("Transpose", [x], perm=[0, 2, 3, 1])

    def to_bytes(self, inputs: dict[str, list], outputs: dict[str, str], name: str) -> bytes:
        """The model; `inputs` maps input names to NHWC shapes (None for any size), `outputs` names node outputs."""
        from onnx import TensorProto, helper

        renamed = [helper.make_node("Identity", [node_out], [out_name]) for out_name, node_out in outputs.items()]
        graph = helper.make_graph(
            self.nodes + renamed, name,
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in outputs],
            self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facesearch")
        model.ir_version = 8  # readable by every onnxruntime of the last few years
        return model.SerializeToString()


# --- MTCNN ------------------------------------------------------------------------------------------------

def mtcnn_weight_file(name: str) -> Path:
    """The file of MTCNN's `pnet`, `rnet` or `onet` weights inside the installed `mtcnn` package."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the mtcnn package (which ships MTCNN's weights) is not installed: "
                                  "pip install mtcnn==1.0.0")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights" / f"{name}.lz4"


def mtcnn_weights(name: str) -> list[np.ndarray]:
    """The arrays of MTCNN's `pnet`, `rnet` or `onet`, in the layer order of the mtcnn 1.0.0 networks."""
    return read_arrays(mtcnn_weight_file(name))


# The only objects MTCNN's weight files are made of; anything else in such a file is refused.
_ARRAY_CLASSES = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("numpy", "ndarray"), ("numpy", "dtype")}


def read_arrays(path: Path) -> list[np.ndarray]:
    """The list of arrays in a joblib file compressed with LZ4, as the mtcnn package ships its weights.

    Such a file is a pickle, and a pickle can name any function to call. This reader builds only NumPy arrays
    and refuses every other name with `pickle.UnpicklingError`, so even a tampered file cannot run code
    (tests/test_forget_leaves_nothing.py tries one). facesearch writes no pickles and reads no others."""
    import io
    import pickle

    import lz4.frame
    from joblib.numpy_pickle import NumpyUnpickler

    class ArraysOnly(NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) not in _ARRAY_CLASSES:
                raise pickle.UnpicklingError(f"{path}: refused to build {module}.{name}; only arrays are read")
            return super().find_class(module, name)

    stream = io.BytesIO(lz4.frame.decompress(Path(path).read_bytes()))
    try:
        reader = ArraysOnly(str(path), stream, ensure_native_byte_order=True)
    except TypeError:  # joblib before 1.5 has no such argument
        reader = ArraysOnly(str(path), stream)
    arrays = reader.load()
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise ValueError(f"{path}: not a list of arrays")
    return arrays


def _softmax_face(g: GraphBuilder, logits: str, axis: int) -> str:
    return g.op("Softmax", [logits], axis=axis)


def cached_mtcnn_graph(name: str, folder: Path | None, rebuild: bool = False) -> bytes:
    """`mtcnn_graph(name)`, kept in `folder` (None: built in memory every time); `rebuild` builds it again and
    replaces the kept file (one ONNX Runtime could not load).

    Building needs the `onnx` package, whose import alone took 0.64 s of a cold command's start on this
    project's 2-core machine, against 0.06 s for building and 0.04 s for the sessions. The file's name carries
    a digest of the weight file and of this module, so new weights or a changed builder make a new file; it
    is written to a temporary name and renamed, so a reader never sees half of one. A folder that cannot be
    written to only means building again next time."""
    if folder is None:
        return mtcnn_graph(name)
    digest = hashlib.sha256(mtcnn_weight_file(name).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]
    target = Path(folder) / f"mtcnn-{name}-{digest}.onnx"
    if not rebuild:
        try:
            return target.read_bytes()
        except OSError:
            pass
    graph = mtcnn_graph(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, graph)
    except OSError:
        pass
    return graph


def mtcnn_graph(name: str) -> bytes:
    """P-Net (`pnet`: any image size -> box offsets (n, h', w', 4) and face probabilities (n, h', w', 2)),
    R-Net (`rnet`: 24x24 patches -> offsets (n, 4), probabilities (n, 2)) or O-Net (`onet`: 48x48 patches ->
    offsets (n, 4), landmarks (n, 10), probabilities (n, 2)), with the layers of mtcnn 1.0.0's networks."""
    w = iter(mtcnn_weights(name))
    g = GraphBuilder()
    x = g.to_nchw("image")

    def conv_prelu(x, same_pool=None, pool=None):
        x = g.conv(x, next(w), next(w), 1, same=False)
        x = g.prelu(x, next(w))
        if pool is not None:
            x = g.max_pool(x, pool[0], pool[1], same=same_pool)
        return x

    def flatten_dense_prelu(x):
        # mtcnn permutes (h, w, c) to (w, h, c) before flattening; NCHW -> (n, w, h, c)
        x = g.op("Flatten", [g.op("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)
        x = g.dense(x, next(w), next(w))
        return g.prelu(x, next(w), channels_first=False)

    if name == "pnet":
        x = conv_prelu(x, True, (2, 2))
        x = conv_prelu(x)
        x = conv_prelu(x)
        offsets = g.to_nhwc(g.conv(x, next(w), next(w), 1, same=False))
        probs = g.to_nhwc(_softmax_face(g, g.conv(x, next(w), next(w), 1, same=False), axis=1))
        return g.to_bytes({"image": [None, None, None, 3]}, {"offsets": offsets, "probs": probs}, name)
    if name == "rnet":
        x = conv_prelu(x, True, (3, 2))
        x = conv_prelu(x, False, (3, 2))
        x = conv_prelu(x)
        x = flatten_dense_prelu(x)
        offsets = g.dense(x, next(w), next(w))
        probs = _softmax_face(g, g.dense(x, next(w), next(w)), axis=1)
        return g.to_bytes({"image": [None, 24, 24, 3]}, {"offsets": offsets, "probs": probs}, name)
    if name == "onet":
        x = conv_prelu(x, True, (3, 2))
        x = conv_prelu(x, False, (3, 2))
        x = conv_prelu(x, True, (2, 2))
        x = conv_prelu(x)
        x = flatten_dense_prelu(x)
        offsets = g.dense(x, next(w), next(w))
        landmarks = g.dense(x, next(w), next(w))
        probs = _softmax_face(g, g.dense(x, next(w), next(w)), axis=1)
        return g.to_bytes({"image": [None, 48, 48, 3]},
                          {"offsets": offsets, "landmarks": landmarks, "probs": probs}, name)
    raise ValueError(f"no MTCNN network called {name!r} (pnet, rnet, onet)")
