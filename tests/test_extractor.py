"""The extractor as the engine runs it (an ONNX graph on ONNX Runtime, chips and mirror images in one call): the
float graph gives the trained Keras network's vectors, the shipped 8-bit graph vectors within a cosine of 0.99 of
them; whatever the batch, and of unit length."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import lfw_photos
from models.align import align
from models.detect import main_face
from models.extractor import Extractor, normalise, preprocess
from models.image import read_image


@pytest.fixture(scope="module")
def chips(detector, data_dir) -> np.ndarray:
    images = [read_image(p) for p in lfw_photos("Gerhard_Schroeder")[:5] + lfw_photos("Serena_Williams")[:4]]
    out = []
    for image, faces in zip(images, detector.detect(images)):
        out.append(align(image, main_face(faces, image.shape[1], image.shape[0])))
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
    """The converter (`models/graphs.py`): a run folder with only the `.keras` file is turned into a float
    graph in memory, which must embed as the Keras network does, whatever the batch."""
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copyfile(shipped_model.with_suffix(suffix), tmp_path / f"extractor{suffix}")
    extractor = Extractor(tmp_path / "extractor.keras", batch_size=4)  # 9 chips: batches of 4, 4 and 1
    got = extractor.embed(chips)
    np.testing.assert_allclose(got, _eager(shipped_model, chips, extractor.info.flip), atol=1e-5)
    np.testing.assert_allclose(extractor.embed(chips[3:4]), got[3:4], atol=1e-5)  # one chip alone: the same
    assert not (tmp_path / "extractor.onnx").exists()


def test_shipped_graph_is_the_8_bit_network(shipped_model, chips):
    """The engine runs the shipped `.onnx`: the same network quantized to 8 bits, so each vector points where
    the float network's does to a cosine of 0.99 or more, unit length, and independent of the batch it came in.
    On a processor without VNNI a graph with full-range 8-bit weights fails this (ONNX Runtime's 8-bit
    products saturate there: cosines from 0.12, 0.87 on average, `models/graphs.py`); the weights must be
    within 7 bits."""
    import onnx
    from onnx import numpy_helper

    from models.graphs import QUANT_PRECISION, QUANT_SUFFIX

    assert shipped_model.with_suffix(".onnx").exists(), "the shipped model's ONNX graph is missing"
    graph = onnx.load(shipped_model.with_suffix(".onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    # batch normalizations folded into the convolutions, PReLU written as max(x, slope * x) (`keras_graph`)
    assert not {"BatchNormalization", "PRelu"} & ops, ops
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = [stored[node.input[0]] for node in graph.node
               if node.op_type == "DequantizeLinear" and node.input[0] in stored
               and stored[node.input[0]].dtype == np.int8]
    assert len(weights) >= 10  # every convolution's and the projection's weights
    # |w| <= 64: two products of an activation (at most 255) and a weight then add up to at most 32,640, which
    # fits the 16 bits that the instruction used without VNNI saturates at (32,767)
    assert all(np.abs(w.astype(np.int32)).max() <= 64 for w in weights)
    extractor = Extractor(shipped_model, batch_size=4)
    assert extractor.info.extra["graph"]["precision"] == QUANT_PRECISION
    assert extractor.version.endswith(QUANT_SUFFIX)
    got = extractor.embed(chips)
    cosines = np.sum(got * _eager(shipped_model, chips, extractor.info.flip), axis=1)
    assert cosines.min() > 0.99, cosines
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(extractor.embed(chips[3:4]), got[3:4], atol=1e-5)


def test_embed_names_the_shape_it_wants(shipped_model):
    with pytest.raises(ValueError, match=r"\(n, 112, 112, 3\)"):
        Extractor(shipped_model).embed(np.zeros((2, 96, 96, 3), np.uint8))
    assert Extractor(shipped_model).embed(np.zeros((0, 112, 112, 3), np.uint8)).shape[0] == 0


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
