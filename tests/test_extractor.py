"""The shipped extractor as the engine runs it (one TensorFlow graph, chips and mirror images in one call):
the same vectors as the Keras model called layer by layer, whatever the batch, and unit length."""
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


def test_graph_embedding_equals_the_keras_model_called_eagerly(shipped_model, chips):
    import keras

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
