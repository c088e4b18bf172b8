"""The networks as ONNX graphs, so that detecting and embedding run on ONNX Runtime instead of TensorFlow.

TensorFlow takes about 4.5 s to import on this project's 2-core machine, more than the rest of a cold
`facesearch who` together (README, "Speed"); ONNX Runtime imports in 0.15 s. TensorFlow stays what the
extractor is trained with; these graphs carry the same weights to run time:

- `mtcnn_graph(name)`: MTCNN's P-Net, R-Net or O-Net, built from the weight files that ship inside the `mtcnn`
  package (read without importing it, since importing it imports TensorFlow).
- `keras_graph(model)`: a trained extractor (`models/network.py`). A training run writes it beside its
  `.keras` file as `.onnx`, quantized to 8-bit integers (`quantize`, a stage of `models/runs.py`), and
  calibrates its thresholds and measures it on LFW through that graph, the one the engine runs.

Graphs take NHWC float32 input, as the Keras networks do, and turn it to ONNX's NCHW once at the start.
Building a graph needs the `onnx` package; running one needs only `onnxruntime`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

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
        the same numbers: two ops that ONNX Runtime runs three times as fast as its PRelu (12 against 36 ms
        on a (128, 24, 56, 56) tensor, 2 cores). The first PReLU of MTCNN's P-Net and of its R-Net has slopes
        above 1 and stays a PRelu."""
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

def mtcnn_weights(name: str) -> list[np.ndarray]:
    """The arrays of MTCNN's `pnet`, `rnet` or `onet`, in the layer order of the mtcnn 1.0.0 networks."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the mtcnn package (which ships MTCNN's weights) is not installed: "
                                  "pip install mtcnn==1.0.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights" / f"{name}.lz4"
    return read_arrays(path)


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


# --- the extractor ----------------------------------------------------------------------------------------

def _inbound(layer_config: dict) -> list[str]:
    """Names of the layers whose outputs a layer of a saved Keras 3 functional model takes, in order."""
    found: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("class_name") == "__keras_tensor__":
                found.append(v["config"]["keras_history"][0])
            else:
                for item in v.values():
                    walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(layer_config.get("inbound_nodes", []))
    return found


def keras_graph(model) -> bytes:
    """A Keras functional model built from the layers of `models/network.py`, as an ONNX graph with input
    `chip` (n, 112, 112, 3) and output `embedding` (n, dim); dropout is left out, as at inference."""
    config = model.get_config()
    consumers: dict[str, list[dict]] = {}
    for entry in config["layers"]:
        for source in _inbound(entry):
            consumers.setdefault(source, []).append(entry)
    g = GraphBuilder()
    out: dict[str, str] = {}
    folded: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # see _fold_into_conv
    input_name = None
    for entry in config["layers"]:
        cls, name, cfg = entry["class_name"], entry["name"], entry["config"]
        inbound = _inbound(entry)
        sources = [out[s] for s in inbound]
        layer = model.get_layer(name) if cls != "InputLayer" else None
        weights = layer.get_weights() if layer is not None else []
        if cls == "InputLayer":
            input_name = name
            out[name] = g.to_nchw(name)
        elif cls == "Conv2D":
            if cfg.get("activation", "linear") != "linear" or cfg.get("dilation_rate", [1, 1]) not in ([1, 1], (1, 1)):
                raise ValueError(f"layer {name}: only linear, undilated convolutions are converted")
            kernel, bias = _folded_kernel(folded.get(inbound[0]), weights[0],
                                          weights[1] if cfg["use_bias"] else None)
            out[name] = g.conv(sources[0], kernel, bias, int(cfg["strides"][0]), same=cfg["padding"] == "same")
        elif cls == "DepthwiseConv2D":
            k = weights[0]  # (kh, kw, in, multiplier=1) -> grouped convolution, one group per channel
            if k.shape[3] != 1:
                raise ValueError(f"layer {name}: depth multiplier {k.shape[3]} is not converted")
            k, bias = _folded_kernel(folded.get(inbound[0]), k, weights[1] if cfg["use_bias"] else None,
                                     depthwise=True)
            kernel = np.transpose(k, (0, 1, 3, 2))  # (kh, kw, 1, in): in/groups = 1, out = in
            out[name] = g.conv(sources[0], kernel, bias, int(cfg["strides"][0]), same=cfg["padding"] == "same",
                               groups=k.shape[2])
        elif cls == "BatchNormalization":
            gamma, beta, mean, var = _bn_arrays(cfg, weights)
            rank = len(layer.input.shape)
            fold = _fold_into_conv(consumers.get(name, []), gamma, beta, mean, var, cfg["epsilon"]) \
                if rank == 4 else None
            if fold is not None:
                folded[name] = fold
                out[name] = sources[0] if fold[1] is not None else \
                    g.op("Add", [sources[0], g.const(_bn_offset(gamma, beta, mean, var, cfg["epsilon"]))])
            elif rank == 4:
                out[name] = g.batch_norm(sources[0], gamma, beta, mean, var, cfg["epsilon"])
            else:  # after the dense layer: (n, dim), written as a scale and a shift
                scale = gamma / np.sqrt(var + cfg["epsilon"])
                y = g.op("Mul", [sources[0], g.const(scale.astype(np.float32))])
                out[name] = g.op("Add", [y, g.const((beta - mean * scale).astype(np.float32))])
        elif cls == "PReLU":
            out[name] = g.prelu(sources[0], weights[0], channels_first=len(layer.input.shape) == 4)
        elif cls == "Add":
            y = sources[0]
            for other in sources[1:]:
                y = g.op("Add", [y, other])
            out[name] = y
        elif cls == "Flatten":
            out[name] = g.op("Flatten", [g.to_nhwc(sources[0])], axis=1)  # Keras flattens in (h, w, c) order
        elif cls == "Dropout":
            out[name] = sources[0]
        elif cls == "Dense":
            if cfg.get("activation", "linear") != "linear":
                raise ValueError(f"layer {name}: only linear dense layers are converted")
            out[name] = g.dense(sources[0], weights[0], weights[1] if cfg["use_bias"] else None)
        elif cls == "UnitNormalization":
            out[name] = g.op("LpNormalization", [sources[0]], axis=-1, p=2)
        else:
            raise ValueError(f"layer {name}: Keras layer type {cls} is not converted to ONNX")
    outputs = config["output_layers"]
    last = outputs[0] if isinstance(outputs[0], str) else outputs[0][0]  # one output: [name, 0, 0]
    return g.to_bytes({input_name: [None, 112, 112, 3]}, {"embedding": out[last]}, model.name)


def _fold_into_conv(users: list[dict], gamma, beta, mean, var, epsilon: float):
    """How a batch normalization y = s * x + t that feeds one convolution alone is folded into it, or None.

    The convolution of y equals that of x with its kernel scaled by s per input channel, plus the kernel's sum
    over t, where no padding is involved ('valid'): returns (s, t), and the normalization is dropped. With
    'same' padding the zeros padded in y are -t/s in x, so the sum over t would be wrong at the borders;
    instead y = s * (x + t/s): the graph adds t/s per channel (`_bn_offset`), which ONNX Runtime does in 8
    bits, and the convolution takes s (returns (s, None)). Either way the normalization no longer leaves the
    8-bit convolutions around it for float and back."""
    if len(users) != 1 or users[0]["class_name"] not in ("Conv2D", "DepthwiseConv2D"):
        return None
    scale = (gamma / np.sqrt(var + epsilon)).astype(np.float64)
    if np.abs(scale).min() < 1e-3:  # t/s would be huge, and so the range the 8-bit activations must cover
        return None
    shift = (beta - mean * scale).astype(np.float64)
    return scale, (shift if users[0]["config"]["padding"] == "valid" else None)


def _bn_offset(gamma, beta, mean, var, epsilon: float) -> np.ndarray:
    """t/s of a batch normalization s * x + t, per channel, as (c, 1, 1) for NCHW tensors."""
    scale = gamma / np.sqrt(var + epsilon)
    return ((beta - mean * scale) / scale).astype(np.float32).reshape(-1, 1, 1)


def _folded_kernel(fold, kernel: np.ndarray, bias: np.ndarray | None, depthwise: bool = False):
    """A Keras kernel (kh, kw, in, out) and bias with the batch normalization before it folded in (`fold` from
    `_fold_into_conv`; None leaves them as they are)."""
    if fold is None:
        return kernel, bias
    scale, shift = fold
    k = kernel.astype(np.float64)
    scaled = k * scale[None, None, :, None]
    if shift is not None:
        # depthwise: out channel c sees in channel c only; otherwise every out channel sees every in channel
        extra = np.einsum("hwc,c->c", k[..., 0], shift) if depthwise else np.einsum("hwio,i->o", k, shift)
        bias = extra if bias is None else bias + extra
    return scaled.astype(np.float32), None if bias is None else np.asarray(bias, np.float32)


def _bn_arrays(cfg: dict, weights: list[np.ndarray]):
    """gamma, beta, moving mean, moving variance of a Keras BatchNormalization layer (scale and center may be off)."""
    it = iter(weights)
    n = weights[-1].shape[0]
    gamma = next(it) if cfg.get("scale", True) else np.ones(n, np.float32)
    beta = next(it) if cfg.get("center", True) else np.zeros(n, np.float32)
    return gamma, beta, next(it), next(it)


# Chips of training identities that set the ranges of the 8-bit activations, with their mirror images.
CALIBRATION_CHIPS = 512


# The version suffix of an extractor whose engine graph `quantize` wrote, and the earlier ones it replaces, with
# why (`models.card.refresh_card` writes the reason into the model card when a shipped graph is rewritten).
QUANT_SUFFIX = "-q8w7f"
OLD_QUANT_SUFFIXES = {
    "-q8": "had full-range 8-bit weights, which overflow ONNX Runtime's 8-bit products on processors without "
           "VNNI (`models/graphs.py`, `quantize`)",
    "-q8w7": "ran each batch normalization before a convolution, and each PReLU, in float between two 8-bit "
             "convolutions; the new graph folds those normalizations into the convolutions and writes PReLU "
             "as max(x, slope * x) (`models/graphs.py`, `keras_graph`), which embeds faster",
}
QUANT_PRECISION = ("8-bit integers (activations per tensor; weights per channel, kept to 7 bits; batch "
                   "normalizations folded into the convolutions)")


# What `quantize` turns to 8 bits. Not Mul: PReLU is written as Max(x, Mul(x, slope)) (`GraphBuilder.prelu`), and
# an 8-bit Mul there cost more in conversions than it saved.
QUANTIZED_OPS = ["Conv", "MatMul", "Add"]


def calibration_sample(chips: np.ndarray, n: int = CALIBRATION_CHIPS, seed: int = 0) -> np.ndarray:
    """`n` of the (m, 112, 112, 3) uint8 chips drawn with `seed`, and their mirror images, as the network's
    float input: what quantization measures its activation ranges on."""
    from models.extractor import preprocess

    pick = np.sort(np.random.default_rng(seed).choice(len(chips), min(n, len(chips)), replace=False))
    x = preprocess(chips[pick])
    return np.concatenate([x, x[:, :, ::-1]])


def quantize(graph: bytes, sample: np.ndarray, batch: int = 64) -> bytes:
    """The graph with its convolutions and matrix products in 8-bit integers: weights per output channel
    (signed, in 7 bits: see below), activations per tensor (unsigned, 8 bits), their ranges the 0.001 % to
    99.999 % percentiles over `sample`.

    Weights are kept to 7 bits (-64..64) because on x86 processors without VNNI (AVX2-only, e.g. AMD Zen 2
    and 3, most laptops before 2019), ONNX Runtime multiplies unsigned activations by signed weights with an
    instruction (VPMADDUBSW) that adds pairs of products into 16 bits and saturates; full-range 8-bit weights
    overflow it. The project's first 8-bit extractor (fs-triplet-20261128-4aea0a17f8-q8) pointed where the
    float network does to a cosine of 0.999 on a VNNI processor but 0.87 on average (0.12 at worst) on an
    AVX2-only one; with 7-bit weights it is 0.9987 (0.9947) there. The workaround is the one ONNX Runtime's
    quantization guide and OpenVINO's "saturation issue" page give. README, "The model", has the numbers
    (`scripts/quantization_check.py`)."""
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = _input_name(graph)
    # ONNX Runtime's histograms want batches of one size: a sample of fewer than `batch` goes whole, a larger
    # one in full batches (a remainder is left out)
    batch = min(batch, len(sample))
    sample = sample[:len(sample) - len(sample) % batch]

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._parts = iter(range(0, len(sample), batch))

        def get_next(self):
            start = next(self._parts, None)
            return None if start is None else {name: sample[start:start + batch]}

    with tempfile.TemporaryDirectory(prefix="facesearch-quantize-") as tmp:
        src, pre, out = (Path(tmp) / f for f in ("float.onnx", "prepared.onnx", "int8.onnx"))
        src.write_bytes(graph)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=QUANTIZED_OPS,
                        calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibTensorRangeSymmetric": False})
        return out.read_bytes()


def _input_name(graph: bytes) -> str:
    import onnx

    return onnx.load_from_string(graph).graph.input[0].name


def export_extractor(keras_path: Path, onnx_path: Path | None = None, sample: np.ndarray | None = None) -> Path:
    """Write the ONNX graph of a saved extractor beside it (`.onnx`), via a temporary file and a rename;
    quantized on `sample` (see `calibration_sample`) when one is given."""
    import keras

    keras_path = Path(keras_path)
    onnx_path = Path(onnx_path) if onnx_path else keras_path.with_suffix(".onnx")
    data = keras_graph(keras.models.load_model(keras_path, compile=False))
    if sample is not None:
        data = quantize(data, sample)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(onnx_path)
    return onnx_path
