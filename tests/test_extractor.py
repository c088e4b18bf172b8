"""The shipped extractor as the engine runs it (its ONNX graph on ONNX Runtime, chips and mirror images in one
call): the same vectors as the trained Keras model called layer by layer, whatever the batch, and unit length."""
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


def test_onnx_embedding_equals_the_keras_model_called_eagerly(shipped_model, chips):
    import keras

    assert shipped_model.with_suffix(".onnx").exists(), "the shipped model's ONNX graph is missing"
    extractor = Extractor(shipped_model, batch_size=4)  # 9 chips: batches of 4, 4 and 1
    got = extractor.embed(chips)
    net = keras.models.load_model(shipped_model, compile=False)
    x = preprocess(chips)
    want = np.asarray(net(x, training=False))
    if extractor.info.flip:
        want = want + np.asarray(net(x[:, :, ::-1, :], training=False))
    np.testing.assert_allclose(got, normalise(want), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(extractor.embed(chips[3:4]), got[3:4], atol=1e-5)  # one chip alone: the same


def test_embed_names_the_shape_it_wants(shipped_model):
    with pytest.raises(ValueError, match=r"\(n, 112, 112, 3\)"):
        Extractor(shipped_model).embed(np.zeros((2, 96, 96, 3), np.uint8))
    assert Extractor(shipped_model).embed(np.zeros((0, 112, 112, 3), np.uint8)).shape[0] == 0


def test_a_run_without_an_onnx_file_is_converted_on_load(shipped_model, chips, tmp_path):
    """Run folders saved before ONNX graphs were written hold only the `.keras` file: the extractor makes the
    graph in memory and embeds the same."""
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copyfile(shipped_model.with_suffix(suffix), tmp_path / f"extractor{suffix}")
    old_run = Extractor(tmp_path / "extractor.keras")
    np.testing.assert_allclose(old_run.embed(chips[:3]), Extractor(shipped_model).embed(chips[:3]), atol=1e-6)
    assert not (tmp_path / "extractor.onnx").exists()
