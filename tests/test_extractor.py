"""The extractor as the engine runs it (an ONNX graph on ONNX Runtime, chips and mirror images in one call): the
float graph gives the trained Keras network's vectors, the shipped 8-bit graph vectors within a cosine of 0.999 of
them on average; whatever the batch, and of unit length."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import lfw_photos
from models.align import align
from models.detect import main_face
from models.extractor import Extractor, normalise, preprocess
from models.image import read_image


@pytest.fixture(scope="module")
def chips(detector, data_dir, shipped_model) -> np.ndarray:
    """Nine chips cut for the shipped extractor's geometry."""
    geometry = Extractor(shipped_model).info.chip
    images = [read_image(p) for p in lfw_photos("Gerhard_Schroeder")[:5] + lfw_photos("Serena_Williams")[:4]]
    out = []
    for image, faces in zip(images, detector.detect(images)):
        out.append(align(image, main_face(faces, image.shape[1], image.shape[0]), geometry))
    return np.stack(out)


def _eager(weights, chips: np.ndarray, flip: bool) -> np.ndarray:
    """The Keras network called layer by layer, with the mirror-image sum when `flip`."""
    import keras

    net = keras.models.load_model(weights, compile=False)
    x = preprocess(chips)
    want = np.asarray(net(x, training=False))
    if flip:
        want = want + np.asarray(net(x[:, :, ::-1, :], training=False))
    return normalise(want)


def test_float_graph_equals_the_keras_model_called_eagerly(shipped_model, chips, tmp_path):
    """The converter (`models/training/export.py`): a run folder with only the `.keras` file is turned into a float
    graph in memory, which must embed as the Keras network does, whatever the batch."""
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copyfile(shipped_model.with_suffix(suffix), tmp_path / f"extractor{suffix}")
    from models.training.export import open_extractor

    extractor = open_extractor(tmp_path / "extractor.keras", batch_size=4)  # 9 chips: batches of 4, 4 and 1
    got = extractor.embed(chips)
    np.testing.assert_allclose(got, _eager(shipped_model, chips, extractor.info.flip), atol=1e-5)
    np.testing.assert_allclose(extractor.embed(chips[3:4]), got[3:4], atol=1e-5)  # one chip alone: the same
    assert not (tmp_path / "extractor.onnx").exists()


def test_shipped_graph_is_the_8_bit_network(shipped_model, chips):
    """The engine runs the shipped `.onnx`: the same network quantized to 8 bits, so each vector points where
    the float network's does to a cosine of 0.999 on average (0.995 at worst), unit length, and independent of
    the batch it came in. On a processor without VNNI a graph with full-range 8-bit weights fails this (ONNX
    Runtime's 8-bit products saturate there: cosines from 0.12, 0.87 on average, `models/training/export.py`); the
    weights must be within 7 bits."""
    import onnx
    from onnx import numpy_helper

    from models.training.export import QUANT_PRECISION, QUANT_SUFFIX

    assert shipped_model.with_suffix(".onnx").exists(), "the shipped model's ONNX graph is missing"
    graph = onnx.load(shipped_model.with_suffix(".onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Relu"} <= set(ops)
    # dlib's 29 convolutions and the 4 fixed downsampling shortcuts, each an 8-bit convolution; its affine
    # layers folded into them (`models/training/dlib_port.py`): nothing between two convolutions but ReLU and addition
    assert ops.count("Conv") == 33
    assert not {"BatchNormalization", "PRelu", "Mul"} & set(ops), set(ops)
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = [stored[node.input[0]] for node in graph.node
               if node.op_type == "DequantizeLinear" and node.input[0] in stored
               and stored[node.input[0]].dtype == np.int8]
    assert len(weights) >= 34  # every convolution's and the last layer's weights
    # |w| <= 64: two products of an activation (at most 255) and a weight then add up to at most 32,640, which
    # fits the 16 bits that the instruction used without VNNI saturates at (32,767)
    assert all(np.abs(w.astype(np.int32)).max() <= 64 for w in weights)
    extractor = Extractor(shipped_model, batch_size=4)
    assert extractor.info.extra["graph"]["precision"] == QUANT_PRECISION
    assert extractor.version.endswith(QUANT_SUFFIX)
    got = extractor.embed(chips)
    cosines = np.sum(got * _eager(shipped_model, chips, extractor.info.flip), axis=1)
    assert cosines.mean() > 0.999 and cosines.min() > 0.995, cosines
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(extractor.embed(chips[3:4]), got[3:4], atol=1e-5)


def test_embed_names_the_shape_it_wants(shipped_model):
    side = Extractor(shipped_model).info.chip.size
    assert side == 150  # dlib's chip (models/align.py, DLIB_150)
    with pytest.raises(ValueError, match=r"\(n, 150, 150, 3\)"):
        Extractor(shipped_model).embed(np.zeros((2, 112, 112, 3), np.uint8))
    assert Extractor(shipped_model).embed(np.zeros((0, side, side, 3), np.uint8)).shape[0] == 0


def test_a_batch_split_over_sessions_gives_the_same_vectors(shipped_model, chips):
    """`runtime.SplitBatch` (what the extractor runs on a machine of several cores) cuts each batch into parts,
    one per single-thread session, and joins their outputs in order: the same numbers as one session, for a
    batch that does not divide evenly and for a batch smaller than the number of sessions."""
    from models import runtime

    graph = shipped_model.with_suffix(".onnx")
    one = runtime.session(graph)
    split = runtime.SplitBatch(graph, 3)
    name = split.get_inputs()[0].name
    for batch in (preprocess(chips), preprocess(chips[:2])):  # 9 chips in parts of 3; 2 chips in parts of 1
        want = one.run(None, {name: batch})[0]
        got = split.run(None, {name: batch})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)


def _prelu_qdq_graph(slopes: np.ndarray, height: int, width: int, x_scale: float, x_zero: int, y_scale: float,
                     y_zero: int, extra_max: bool = False) -> bytes:
    """8-bit x -> DequantizeLinear -> max(x, slopes * x) -> QuantizeLinear -> 8-bit y, the pattern ONNX Runtime's
    quantizer leaves around each PReLU of the extractor; with `extra_max`, also a Max of x and itself that is no
    PReLU."""
    from onnx import TensorProto, helper, numpy_helper

    c = len(slopes)
    consts = {"xs": np.float32(x_scale), "xz": np.uint8(x_zero), "ys": np.float32(y_scale), "yz": np.uint8(y_zero),
              "slope": slopes.astype(np.float32).reshape(c, 1, 1)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("Mul", ["xf", "slope"], ["ax"]),
             helper.make_node("Max", ["xf", "ax"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.UINT8, None)]
    if extra_max:
        nodes.append(helper.make_node("Max", ["x", "x"], ["other"]))
        outputs.append(helper.make_tensor_value_info("other", TensorProto.UINT8, None))
    graph = helper.make_graph(
        nodes, "prelu", [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, c, height, width])], outputs,
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
        value_info=[helper.make_tensor_value_info("m", TensorProto.FLOAT, [None, c, height, width])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_prelu_in_8_bits_gives_the_float_prelu_within_one_step():
    """`export.prelu_in_8_bits` turns the float PReLU between two conversions into 8-bit operations: every input
    code of every channel (slopes negative, zero, positive, up to 1) comes out within one output step of the
    float PReLU's, and a Max that is not a PReLU is left alone."""
    import onnx

    from models import runtime
    from models.training.export import prelu_in_8_bits

    slopes = np.array([-0.45, -0.2, -0.013, 0.0, 0.05, 0.19, 0.5, 1.0])
    graph = _prelu_qdq_graph(slopes, 16, 16, x_scale=0.05, x_zero=131, y_scale=0.04, y_zero=3, extra_max=True)
    rewritten = prelu_in_8_bits(graph)
    ops = [node.op_type for node in onnx.load_from_string(rewritten).graph.node]
    assert sorted(ops) == ["Max", "Max", "QLinearLeakyRelu", "QLinearMul"], ops
    x = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16), (2, len(slopes), 16, 16)).copy()
    x[1] = x[1, :, ::-1, ::-1]  # a second image, codes in another order
    before = runtime.session(graph).run(None, {"x": x})
    after = runtime.session(rewritten).run(None, {"x": x})
    xf = (x.astype(np.float64) - 131) * 0.05

    def prelu_q(a: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.maximum(xf, a.reshape(-1, 1, 1) * xf) / 0.04) + 3, 0, 255)

    want = prelu_q(slopes)
    step = (1.0 + 0.45) / 255  # the slopes' 8-bit step over their range, zero included
    want_8_bit_slopes = prelu_q((np.round(slopes / step + 0.45 / step) - round(0.45 / step)) * step)
    assert np.abs(before[0].astype(int) - want).max() <= 1  # the float pattern itself, to float32's rounding
    assert (before[0] != want).mean() < 0.03
    assert np.abs(after[0].astype(int) - want).max() <= 1
    assert (after[0] != want).mean() < 0.1  # the slopes moved by up to half a step
    assert (after[0] != want_8_bit_slopes).mean() < 0.03  # as exact as the float pattern, given those slopes
    np.testing.assert_array_equal(after[1], before[1])  # the other Max: untouched
    assert prelu_in_8_bits(rewritten) == rewritten  # nothing left to rewrite


def test_constants_per_pixel_gives_the_same_numbers():
    """`export.constants_per_pixel` writes a per-channel 8-bit constant that an addition broadcasts over a
    feature map out over the map's height and width: ONNX Runtime gives the same bytes, and a constant read
    twice, or one whose map's shape is unknown, is left as it is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from models import runtime
    from models.training.export import constants_per_pixel

    c, h, w = 6, 5, 7
    consts = {"s": np.float32(0.05), "z": np.uint8(120), "cs": np.float32(0.02), "cz": np.uint8(30),
              "ys": np.float32(0.07), "yz": np.uint8(100),
              "offset": np.arange(c, dtype=np.uint8).reshape(c, 1, 1) * 40,
              "shared": np.arange(c, dtype=np.uint8).reshape(c, 1, 1) * 9}
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
             helper.make_node("DequantizeLinear", ["offset", "cs", "cz"], ["of"]),
             helper.make_node("Add", ["xf", "of"], ["sum"]),
             helper.make_node("QuantizeLinear", ["sum", "ys", "yz"], ["y"]),
             helper.make_node("DequantizeLinear", ["shared", "cs", "cz"], ["sf"]),  # read by two Adds: left
             helper.make_node("Add", ["xf", "sf"], ["u"]),
             helper.make_node("Add", ["sf", "sf"], ["v"])]
    graph = helper.make_graph(
        nodes, "offsets", [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, c, h, w])],
        [helper.make_tensor_value_info(n, TensorProto.UINT8 if n == "y" else TensorProto.FLOAT, None)
         for n in ("y", "u", "v")],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
        value_info=[helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, c, h, w]),
                    helper.make_tensor_value_info("u", TensorProto.FLOAT, [None, c, h, w])])
    before = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    after = constants_per_pixel(before)
    stored = {t.name: list(t.dims) for t in onnx.load_from_string(after).graph.initializer}
    assert stored["offset"] == [c, h, w] and stored["shared"] == [c, 1, 1]
    x = np.random.default_rng(0).integers(0, 256, (3, c, h, w)).astype(np.uint8)
    for got, want in zip(runtime.session(after).run(None, {"x": x}), runtime.session(before).run(None, {"x": x})):
        np.testing.assert_array_equal(got, want)
    assert constants_per_pixel(after) == after  # nothing left to write out
