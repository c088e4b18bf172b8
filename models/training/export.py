"""A trained extractor as the ONNX graph the engine runs: `keras_graph` (the float network), `quantize` (8-bit
integers) and `export_extractor` (both, written beside the `.keras` file).

A training run writes it beside its `.keras` file as `.onnx`, quantized to 8-bit integers (`quantize`, a stage
of `models/training/runs.py`), and calibrates its thresholds and measures it on LFW through that graph, the one
the engine runs. Graphs take NHWC float32 input, as the Keras networks do, and turn it to ONNX's NCHW once at
the start (`models.graphs.GraphBuilder`). Building a graph needs the `onnx` package.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.files import write_atomic
from models.graphs import GraphBuilder

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
    """A Keras functional model built from the layers of `models/training/network.py` or `models/training/dlib_port.py`, as an
    ONNX graph with input `chip` (n, side, side, 3) and output `embedding` (n, dim); dropout is left out, as at
    inference.

    The same function, up to float rounding, with fewer steps between the convolutions, since in the 8-bit
    graph each step that is not a convolution or an addition is a trip to float and back:
    - a batch normalization y = s * x + t that feeds one convolution alone is folded into its kernel
      (`_fold_into_conv`); where that convolution pads ('same'), the zeros padded in y are -t/s in x, so
      the convolution must see x + t/s, an addition per channel;
    - that addition is carried, where it can be, by the residual stream itself: the normalization before a
      block's final addition adds it to its own output (`shift`: what a tensor carries over the layer's true
      output), and each reader of a shifted tensor takes the shift out again for free: a 1x1 or unpadded
      convolution in its bias, a normalization in its offset, an addition by passing it on. Only the first
      block's addition (after the stem's PReLU) stays;
    - PReLU is written as max(x, slope * x) (`GraphBuilder.prelu`)."""
    config = model.get_config()
    consumers: dict[str, list[dict]] = {}
    for entry in config["layers"]:
        for source in _inbound(entry):
            consumers.setdefault(source, []).append(entry)
    # which normalizations fold, and the shift each block's addition should carry for the one after it
    folds, targets = {}, {}
    for entry in config["layers"]:
        if entry["class_name"] == "BatchNormalization" and len(model.get_layer(entry["name"]).input.shape) == 4:
            cfg = entry["config"]
            fold = _fold_into_conv(consumers.get(entry["name"], []), *_bn_arrays(cfg, model.get_layer(
                entry["name"]).get_weights()), cfg["epsilon"])
            if fold is not None:
                folds[entry["name"]] = fold
                scale, offset, valid = fold
                source = _inbound(entry)[0]
                if not valid and _class(config, source) == "Add":
                    targets.setdefault(source, offset / scale)
    g = GraphBuilder()
    out: dict[str, str] = {}
    shift: dict[str, np.ndarray] = {}
    folded: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    def exact(name: str) -> str:
        """The layer's output without the shift it carries."""
        if name not in shift:
            return out[name]
        return g.op("Add", [out[name], g.const(_channels(-shift[name]))])

    input_name = None
    for entry in config["layers"]:
        cls, name, cfg = entry["class_name"], entry["name"], entry["config"]
        inbound = _inbound(entry)
        layer = model.get_layer(name) if cls != "InputLayer" else None
        weights = layer.get_weights() if layer is not None else []
        if cls == "InputLayer":
            input_name = name
            out[name] = g.to_nchw(name)
        elif cls in ("Conv2D", "DepthwiseConv2D"):
            if cfg.get("activation", "linear") != "linear" or cfg.get("dilation_rate", [1, 1]) not in ([1, 1], (1, 1)):
                raise ValueError(f"layer {name}: only linear, undilated convolutions are converted")
            k = weights[0]  # (kh, kw, in, out), or (kh, kw, in, multiplier=1) for a depthwise one
            depthwise = cls == "DepthwiseConv2D"
            if depthwise and k.shape[3] != 1:
                raise ValueError(f"layer {name}: depth multiplier {k.shape[3]} is not converted")
            bias = weights[1] if cfg["use_bias"] else None
            same = cfg["padding"] == "same"
            source = inbound[0]
            fold = folded.get(source)
            if fold is None and source in shift and (not same or k.shape[:2] == (1, 1)):
                fold = (np.ones(k.shape[2]), -shift[source])  # no padding: the shift comes out in the bias
                x = out[source]
            else:
                x = out[source] if fold is not None else exact(source)
            k, bias = _folded_kernel(fold, k, bias, depthwise=depthwise)
            if depthwise:  # a grouped convolution, one group per channel: (kh, kw, 1, in)
                out[name] = g.conv(x, np.transpose(k, (0, 1, 3, 2)), bias, int(cfg["strides"][0]), same=same,
                                   groups=k.shape[2])
            else:
                out[name] = g.conv(x, k, bias, int(cfg["strides"][0]), same=same)
        elif cls == "BatchNormalization":
            gamma, beta, mean, var = _bn_arrays(cfg, weights)
            source = inbound[0]
            carried = shift.get(source)
            if name in folds:
                scale, offset, valid = folds[name]
                if valid:  # the reader's bias takes t, less what the input carries
                    folded[name] = (scale, offset - (0 if carried is None else scale * carried))
                    out[name] = out[source]
                else:  # the reader must see x + t/s
                    folded[name] = (scale, None)
                    missing = offset / scale - (0 if carried is None else carried)
                    out[name] = out[source] if np.abs(missing).max() < 1e-9 else \
                        g.op("Add", [out[source], g.const(_channels(missing))])
            elif len(layer.input.shape) == 4:
                scale = gamma / np.sqrt(var + cfg["epsilon"])
                want = _wanted_shift(name, consumers, targets, shift, out)
                beta = beta - (0 if carried is None else scale * carried) + (0 if want is None else want)
                out[name] = g.batch_norm(out[source], gamma, beta, mean, var, cfg["epsilon"])
                if want is not None:
                    shift[name] = want
            else:  # after the dense layer: (n, dim), written as a scale and a shift
                scale = gamma / np.sqrt(var + cfg["epsilon"])
                y = g.op("Mul", [exact(source), g.const(scale.astype(np.float32))])
                out[name] = g.op("Add", [y, g.const((beta - mean * scale).astype(np.float32))])
        elif cls == "PReLU":
            out[name] = g.prelu(exact(inbound[0]), weights[0], channels_first=len(layer.input.shape) == 4)
        elif cls == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise ValueError(f"layer {name}: only plain ReLU is converted")
            out[name] = g.op("Relu", [exact(inbound[0])])
        elif cls == "MaxPooling2D":
            size, stride = int(cfg["pool_size"][0]), int(cfg["strides"][0])
            out[name] = g.max_pool(exact(inbound[0]), size, stride, same=cfg["padding"] == "same")
        elif cls == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
            out[name] = g.op("Pad", [exact(inbound[0]), g.const(pads, "pads")], mode="constant")
        elif cls == "GlobalAveragePooling2D":
            out[name] = g.op("Flatten", [g.op("GlobalAveragePool", [exact(inbound[0])])], axis=1)
        elif cls == "Add":
            y = out[inbound[0]]
            for other in inbound[1:]:
                y = g.op("Add", [y, out[other]])
            out[name] = y
            carried = [shift[s] for s in inbound if s in shift]
            if carried:
                shift[name] = np.sum(carried, axis=0)
        elif cls == "Flatten":
            out[name] = g.op("Flatten", [g.to_nhwc(exact(inbound[0]))], axis=1)  # Keras flattens in (h, w, c) order
        elif cls == "Dropout":
            out[name] = out[inbound[0]]
            if inbound[0] in shift:
                shift[name] = shift[inbound[0]]
        elif cls == "Dense":
            if cfg.get("activation", "linear") != "linear":
                raise ValueError(f"layer {name}: only linear dense layers are converted")
            out[name] = g.dense(exact(inbound[0]), weights[0], weights[1] if cfg["use_bias"] else None)
        elif cls == "UnitNormalization":
            out[name] = g.op("LpNormalization", [exact(inbound[0])], axis=-1, p=2)
        else:
            raise ValueError(f"layer {name}: Keras layer type {cls} is not converted to ONNX")
    outputs = config["output_layers"]
    last = outputs[0] if isinstance(outputs[0], str) else outputs[0][0]  # one output: [name, 0, 0]
    return g.to_bytes({input_name: [None, *model.input.shape[1:]]}, {"embedding": exact(last)}, model.name)


def _class(config: dict, name: str) -> str | None:
    return next((e["class_name"] for e in config["layers"] if e["name"] == name), None)


def _wanted_shift(name: str, consumers: dict, targets: dict, shift: dict, out: dict) -> np.ndarray | None:
    """The shift a normalization's output should carry: where it is the last input of an addition to be
    written, and that addition's output should carry one (`targets`), what the other inputs do not carry."""
    users = consumers.get(name, [])
    if len(users) != 1 or users[0]["class_name"] != "Add" or users[0]["name"] not in targets:
        return None
    others = [s for s in _inbound(users[0]) if s != name]
    if not all(s in out for s in others):  # another input is written later and carries it instead
        return None
    return targets[users[0]["name"]] - sum((shift[s] for s in others if s in shift), np.zeros(1))


def _channels(v: np.ndarray) -> np.ndarray:
    """A per-channel vector as a (c, 1, 1) float32 constant for NCHW tensors."""
    return np.asarray(v, np.float32).reshape(-1, 1, 1)


def _fold_into_conv(users: list[dict], gamma, beta, mean, var, epsilon: float):
    """How a batch normalization y = s * x + t that feeds one convolution alone is folded into it, or None.

    The convolution of y equals that of x with its kernel scaled by s per input channel, plus the kernel's sum
    over t, where no padding is involved ('valid'). With 'same' padding the zeros padded in y are -t/s in x,
    so the sum over t would be wrong at the borders; instead y = s * (x + t/s): the convolution sees x + t/s
    (see `keras_graph`) and takes s. Returns (s, t, whether 'valid')."""
    if len(users) != 1 or users[0]["class_name"] not in ("Conv2D", "DepthwiseConv2D"):
        return None
    scale = (gamma / np.sqrt(var + epsilon)).astype(np.float64)
    if np.abs(scale).min() < 1e-3:  # t/s would be huge, and so the range the 8-bit activations must cover
        return None
    shift = (beta - mean * scale).astype(np.float64)
    return scale, shift, users[0]["config"]["padding"] == "valid"


def _folded_kernel(fold, kernel: np.ndarray, bias: np.ndarray | None, depthwise: bool = False):
    """A Keras kernel (kh, kw, in, out) and bias with a per-channel y = s * x + t before it folded in (`fold`
    = (s, t), t None for none; None leaves them as they are)."""
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
# why (`models.training.card.refresh_card` writes the reason into the model card when a shipped graph is rewritten).
QUANT_SUFFIX = "-q8w7p"
OLD_QUANT_SUFFIXES = {
    "-q8": "had full-range 8-bit weights, which overflow ONNX Runtime's 8-bit products on processors without "
           "VNNI (`models/training/export.py`, `quantize`)",
    "-q8w7": "ran each batch normalization before a convolution, and each PReLU, in float between two 8-bit "
             "convolutions; the new graph folds those normalizations into the convolutions, carries their "
             "offsets in the residual stream and writes PReLU as max(x, slope * x) (`models/training/export.py`, "
             "`keras_graph`), which embeds faster",
    "-q8w7f": "added each folded normalization's offset as an 8-bit addition of its own; the new graph carries "
              "those offsets in the residual stream (`models/training/export.py`, `keras_graph`), which embeds faster",
    "-q8w7s": "ran each PReLU in float between two conversions; the new graph runs it on 8-bit integers "
              "(`models/training/export.py`, `prelu_in_8_bits`), which embeds faster",
}
QUANT_PRECISION = ("8-bit integers (activations per tensor; weights per channel, kept to 7 bits; batch "
                   "normalizations folded into the convolutions, their offsets carried by the residual stream; "
                   "PReLU on 8-bit integers)")
# What ONNX Runtime's quantizer turns to 8 bits. Not Mul: PReLU is written as Max(x, Mul(x, slope))
# (`GraphBuilder.prelu`), and an 8-bit Mul alone, beside a float Max, cost more in conversions than it saved;
# `prelu_in_8_bits` then moves PReLU as a whole to 8 bits.
QUANTIZED_OPS = ["Conv", "MatMul", "Add"]


def calibration_sample(chips: np.ndarray, n: int = CALIBRATION_CHIPS, seed: int = 0) -> np.ndarray:
    """`n` of the (m, side, side, 3) uint8 chips drawn with `seed`, and their mirror images, as the network's
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
    quantization guide and OpenVINO's "saturation issue" page give. docs/from-scratch-extractor.md ("Why 7-bit
    weights") has the numbers (`scripts/quantization_check.py`)."""
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
        return constants_per_pixel(prelu_in_8_bits(out.read_bytes()))


def _graph_index(graph: bytes):
    """The model, and its lookups: initializers by name, known shapes by tensor name, the node making each
    tensor, and the nodes reading each (a node once per input that names it)."""
    import onnx

    model = onnx.load_from_string(graph)
    g = model.graph
    stored = {t.name: t for t in g.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in g.value_info}
    producer = {out: node for node in g.node for out in node.output}
    readers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return model, stored, shapes, producer, readers


def constants_per_pixel(graph: bytes) -> bytes:
    """The quantized graph with each per-channel constant that an 8-bit addition broadcasts over a feature map
    written out over the map's height and width: the same numbers, but ONNX Runtime's 8-bit addition of a
    (channels, 1, 1) operand, the stem's carried offset (`keras_graph`), took 5 % of the extractor's time, as
    long as a convolution of its size (per-node profile, graph -q8w7p), since it runs the broadcast pixel by
    pixel. Only an 8-bit constant read by one DequantizeLinear, read by one Add, whose output's shape is
    known, is written out; the extractor's is 56 x 56 x 24 bytes."""
    from onnx import numpy_helper

    model, stored, shapes, producer, readers = _graph_index(graph)
    g = model.graph
    changed = False
    for add in [node for node in g.node if node.op_type == "Add"]:
        shape = shapes.get(add.output[0], [])
        for name in add.input:
            dq = producer.get(name)
            if (dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in stored
                    or len(readers[name]) != 1 or len(readers[dq.input[0]]) != 1 or len(shape) != 4
                    or not all(shape[1:])):
                continue
            const = numpy_helper.to_array(stored[dq.input[0]])
            if const.shape != (shape[1], 1, 1) or const.dtype not in (np.uint8, np.int8) or shape[2] * shape[3] == 1:
                continue
            tiled = np.ascontiguousarray(np.broadcast_to(const, tuple(shape[1:])))
            stored[dq.input[0]].CopyFrom(numpy_helper.from_array(tiled, dq.input[0]))
            changed = True
    return model.SerializeToString() if changed else graph


def prelu_in_8_bits(graph: bytes) -> bytes:
    """The quantized graph with each PReLU run on 8-bit integers instead of in float between two conversions.

    `quantize` leaves PReLU, written max(x, slope * x) (`GraphBuilder.prelu`), in float: x, the 8-bit output of
    a convolution, is turned to float, multiplied by the slopes, compared, and turned back to 8 bits. Those
    four steps took 29 % of the extractor's time (`bench/embed_throughput.py --profile`, graph -q8w7s). Here
    the same function is three 8-bit operations of ONNX Runtime that read and write the output's 8-bit scale:
    slope * x as a `QLinearMul` (the slopes in 8 bits, asymmetric, one step is at most 1/255 of their range;
    repeated over the feature map's height and width, since a per-channel operand broadcast over each pixel
    took 2.6 times as long), x alone moved to the output's scale by a `QLinearLeakyRelu` of slope 1 (a 256-entry
    table), and the larger of the two by `Max`, which is exact on two 8-bit numbers of one scale. A pattern
    that is not exactly DequantizeLinear -> Mul(constant slopes) and Max -> QuantizeLinear is left as it is."""
    from onnx import helper, numpy_helper

    model, stored, shapes, producer, readers = _graph_index(graph)
    g = model.graph

    def only(name: str):
        found = readers.get(name, [])
        return found[0] if len(found) == 1 else None

    gone: set[int] = set()
    new_nodes: dict[int, list] = {}  # id(the Max it replaces) -> the nodes written in its place
    for mx in [node for node in g.node if node.op_type == "Max" and len(node.input) == 2]:
        dq, mul = producer.get(mx.input[0]), producer.get(mx.input[1])
        q_out = only(mx.output[0])
        if (dq is None or mul is None or q_out is None or dq.op_type != "DequantizeLinear" or mul.op_type != "Mul"
                or q_out.op_type != "QuantizeLinear" or mul.input[0] != dq.output[0] or mul.input[1] not in stored
                or {id(n) for n in readers[dq.output[0]]} != {id(mul), id(mx)} or only(mul.output[0]) is not mx
                or len(dq.input) != 3 or len(q_out.input) != 3):
            continue
        x, x_scale, x_zero = dq.input
        y_scale, y_zero = q_out.input[1], q_out.input[2]
        slope = numpy_helper.to_array(stored[mul.input[1]]).astype(np.float32)
        lo, hi = min(float(slope.min()), 0.0), max(float(slope.max()), 0.0)
        step = (hi - lo) / 255 or 1.0
        zero = int(round(-lo / step))
        slope_q = np.clip(np.round(slope / step) + zero, 0, 255).astype(np.uint8)
        shape = shapes.get(mx.output[0], [])
        if slope_q.ndim == 3 and len(shape) == 4 and all(shape[1:]) and slope_q.shape == (shape[1], 1, 1):
            slope_q = np.ascontiguousarray(np.broadcast_to(slope_q, tuple(shape[1:])))
        base = mx.output[0]
        g.initializer.extend([numpy_helper.from_array(slope_q, f"{base}_slope_q"),
                              numpy_helper.from_array(np.array(step, np.float32), f"{base}_slope_scale"),
                              numpy_helper.from_array(np.array(zero, np.uint8), f"{base}_slope_zero")])
        new_nodes[id(mx)] = [
            helper.make_node("QLinearMul", [x, x_scale, x_zero, f"{base}_slope_q", f"{base}_slope_scale",
                                            f"{base}_slope_zero", y_scale, y_zero], [f"{base}_times_slope"],
                             domain="com.microsoft"),
            helper.make_node("QLinearLeakyRelu", [x, x_scale, x_zero, y_scale, y_zero], [f"{base}_x"],
                             domain="com.microsoft", alpha=1.0),
            helper.make_node("Max", [f"{base}_times_slope", f"{base}_x"], [q_out.output[0]])]
        gone |= {id(dq), id(mul), id(q_out)}
    if not new_nodes:
        return graph
    nodes = []
    for node in g.node:  # each replacement where its Max was: its inputs are made before, its readers after
        if id(node) in new_nodes:
            nodes += new_nodes[id(node)]
        elif id(node) not in gone:
            nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    used = {name for node in g.node for name in node.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model.SerializeToString()


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
    write_atomic(onnx_path, data)
    return onnx_path


def open_extractor(weights: str | Path, batch_size: int = 64):
    """The extractor of a run folder's `weights` (`.keras`): its `.onnx` graph when the run wrote one, else the
    float graph made here, in memory, from the Keras network (which needs TensorFlow, as training does)."""
    from models.extractor import Extractor

    weights = Path(weights)
    if weights.with_suffix(".onnx").exists():
        return Extractor(weights, batch_size)
    from models.training.network import quiet_tensorflow

    quiet_tensorflow()
    import keras

    return Extractor(weights, batch_size, graph=keras_graph(keras.models.load_model(weights, compile=False)))
