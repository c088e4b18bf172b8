"""MTCNN detection on real LFW photos: faces found where they are, batched equal to single, large photos
detected on a downscaled copy with boxes mapped back."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import lfw_photos
from models.align import align
from models.detect import Detector, main_face
from models.image import read_image


def test_detects_the_centred_lfw_face(detector, data_dir):
    photos = lfw_photos("Colin_Powell")[:8]
    images = [read_image(p) for p in photos]
    found = detector.detect(images)
    assert len(found) == 8
    for image, faces in zip(images, found):
        h, w = image.shape[:2]
        face = main_face(faces, w, h)
        assert face is not None and face.score > 0.9
        cx, cy = (face.box.x0 + face.box.x1) / 2, (face.box.y0 + face.box.y1) / 2
        assert abs(cx - w / 2) < w * 0.15 and abs(cy - h / 2) < h * 0.2
        # eyes above nose above mouth, left eye left of right eye
        lm = face.landmarks
        assert lm[0, 0] < lm[1, 0] and lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()
        assert align(image, face).shape == (112, 112, 3)


def test_batched_detection_equals_one_by_one(detector, data_dir):
    images = [read_image(p) for p in lfw_photos("Tony_Blair")[:4]]
    batched = detector.detect(images)
    for image, faces in zip(images, batched):
        single = detector.detect([image])[0]
        assert len(single) == len(faces)
        np.testing.assert_allclose(single[0].landmarks, faces[0].landmarks, atol=1.5)


def test_large_photo_is_detected_on_a_downscaled_copy(detector, data_dir):
    small = read_image(lfw_photos("Tony_Blair")[0])
    big = np.kron(small, np.ones((12, 12, 1), np.uint8))  # 1920x1920, beyond max_side
    (face_small,) = detector.detect([small])[0][:1]
    faces_big = detector.detect([big])[0]
    assert faces_big, "no face found in the upscaled photo"
    box = faces_big[0].box
    for a, b in zip((box.x0, box.y0, box.x1, box.y1), face_small.box.scaled(12).as_list()):
        assert abs(a - b) < 12 * 6  # within about 6 px of the small photo's box


def test_nothing_found_in_a_blank_photo_or_a_tiny_one(detector):
    found = detector.detect([np.zeros((120, 160, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)])
    assert found == [[], []]


def test_detector_refuses_faces_smaller_than_mtcnns_window():
    with pytest.raises(ValueError, match="at least 12"):
        Detector(min_face_px=8)


def test_a_large_minimum_face_size_still_finds_faces(data_dir):
    """mtcnn 1.0.0 itself finds nothing from min_face_size 30 up (its smallest pyramid level breaks the whole
    call); the cascade skips that level, so 40 px still finds LFW's faces of about 110 px."""
    images = [read_image(p) for p in lfw_photos("Colin_Powell")[:4]]
    found = Detector(min_face_px=40).detect(images)
    assert all(faces and faces[0].score > 0.9 for faces in found)


def test_large_photos_go_to_mtcnn_a_few_at_a_time():
    """Twelve 12 MP photos: their 1024x768 copies go six to a call (DEFAULT_MAX_CALL_PIXELS), whatever the
    caller's batch; pictures of LFW's size still go sixteen to a call."""
    detector = Detector()
    calls = []
    detector._detect_equal = lambda images, floor: calls.append([im.shape for im in images]) or [[] for _ in images]
    assert detector.detect([np.zeros((3000, 4000, 3), np.uint8)] * 12) == [[]] * 12
    assert calls == [[(768, 1024, 3)] * 6] * 2
    calls.clear()
    detector.detect([np.zeros((250, 250, 3), np.uint8)] * 20)
    assert [len(c) for c in calls] == [16, 4]


def test_detection_in_smaller_calls_finds_the_same_faces(detector, data_dir):
    images = [read_image(p) for p in lfw_photos("Tony_Blair")[:5]]
    h, w = images[0].shape[:2]
    capped = Detector(max_call_pixels=2 * h * w)
    capped._cascade = detector._model()  # the same loaded networks
    calls = []
    real = capped._detect_equal
    capped._detect_equal = lambda chunk, floor: calls.append(len(chunk)) or real(chunk, floor)
    found = capped.detect(images)
    assert calls == [2, 2, 1]
    for faces, want in zip(found, detector.detect(images)):
        assert len(faces) == len(want)
        for face, w in zip(faces, want):
            np.testing.assert_allclose(face.landmarks, w.landmarks, atol=1.5)


def test_cascade_finds_what_mtcnn_as_shipped_finds(detector, data_dir):
    """The detector runs MTCNN's networks on ONNX Runtime with its own steps between them (`models/cascade.py`):
    on photos of two sizes, one small and one upscaled past the detector's 1024 px copy, it must give the faces, boxes,
    landmarks and scores that the mtcnn package gives with TensorFlow."""
    import cv2
    from mtcnn import MTCNN

    keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    package = MTCNN(device="CPU:0")
    images = [read_image(p) for p in lfw_photos("Laura_Bush")[:3]]
    images.append(cv2.resize(np.concatenate([images[0], images[1]], axis=1), (1600, 800)))
    found = detector.detect(images)
    want = [package.detect_faces(images[:3], min_face_size=detector.min_face_px, box_format="xyxy"),
            [package.detect_faces(cv2.resize(images[3], (1024, 512), interpolation=cv2.INTER_AREA),
                                  min_face_size=detector.min_face_px, box_format="xyxy")]]
    want = want[0] + want[1]
    want = [sorted((d for d in dets if d["confidence"] >= detector.min_score), key=lambda d: -d["confidence"])
            for dets in want]
    assert [len(f) for f in found] == [len(w) for w in want] and sum(len(w) for w in want) >= 5
    for i, (faces, wanted) in enumerate(zip(found, want)):
        factor = 1600 / 1024 if i == 3 else 1.0  # the large photo was detected on its 1024 px copy
        for face, w in zip(faces, wanted):
            # the package rounds landmarks to whole pixels; the detector keeps their fractions
            np.testing.assert_allclose(face.landmarks / factor, [w["keypoints"][k] for k in keys], atol=0.501)
            assert np.abs(face.landmarks - np.round(face.landmarks)).max() > 0.01
            box = face.box
            np.testing.assert_allclose(np.array([box.x0, box.y0, box.x1, box.y1]) / factor, w["box"], atol=0.01)
            assert abs(face.score - w["confidence"]) < 1e-4


def test_mtcnn_graphs_equal_the_packages_networks():
    """P-Net, R-Net and O-Net as ONNX graphs give what the mtcnn package's Keras networks give, to 1e-5."""
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    from models import runtime
    from models.graphs import mtcnn_graph, mtcnn_weights

    rng = np.random.default_rng(0)
    for name, net, shape in [("pnet", PNet, (2, 57, 83, 3)), ("rnet", RNet, (5, 24, 24, 3)),
                             ("onet", ONet, (5, 48, 48, 3))]:
        keras_net = net()
        keras_net.build()
        keras_net.set_weights(mtcnn_weights(name))
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        got = runtime.session(mtcnn_graph(name)).run(None, {"image": x})
        want = [np.asarray(t) for t in keras_net(x)]
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-5)


def test_a_photo_of_one_face_takes_its_likeliest_face_below_the_detection_score(detector, data_dir, fake_extractor):
    """Jiang_Zemin_0004's face scores between MAIN_FACE_MIN_SCORE and the detector's 0.9: scanning for faces
    (`index`, `who`) finds none, asking for the photo's one face (`verify`, `enroll`) takes it."""
    from indexer.photos import Photo
    from indexer.pipeline import Pipeline, main_faces
    from models.detect import MAIN_FACE_MIN_SCORE
    from models.faces import Box, Face

    path = lfw_photos("Jiang_Zemin")[3]
    image = read_image(path)
    h, w = image.shape[:2]
    assert detector.detect([image]) == [[]]
    faces = detector.detect([image], min_score=MAIN_FACE_MIN_SCORE)[0]
    assert faces and all(MAIN_FACE_MIN_SCORE <= f.score < detector.min_score for f in faces)
    face = main_face(faces, w, h, detector.min_score)
    assert face is max(faces, key=lambda f: f.score)
    assert abs((face.box.x0 + face.box.x1) / 2 - w / 2) < w * 0.15
    (item,) = main_faces(Pipeline(detector, fake_extractor), [path])
    assert isinstance(item, Photo) and len(item.faces) == 1
    # beside a face at the detection score, a larger one below it is not the main face
    points = np.zeros((5, 2), np.float32)
    big_unsure = Face(Box(10, 10, 150, 150), points, 0.85)
    small_sure = Face(Box(0, 0, 40, 40), points, 0.95)
    assert main_face([big_unsure, small_sure], 160, 160, 0.9) is small_sure
    assert main_face([big_unsure, small_sure], 160, 160) is big_unsure


def test_built_graphs_are_kept_and_a_damaged_one_is_built_again(tmp_path, data_dir):
    from models.cascade import Cascade
    from models.graphs import cached_mtcnn_graph, mtcnn_graph

    built = cached_mtcnn_graph("onet", tmp_path)
    (kept,) = tmp_path.glob("mtcnn-onet-*.onnx")
    assert kept.read_bytes() == built == mtcnn_graph("onet")
    kept.write_bytes(b"kept, then damaged")
    assert cached_mtcnn_graph("onet", tmp_path) == b"kept, then damaged"  # read back, not built again
    image = read_image(lfw_photos("Tony_Blair")[0])
    rows = Cascade(tmp_path).detect([image])
    assert len(rows) and rows[:, 5].max() > 0.9
    assert kept.read_bytes() == built  # the damaged file was replaced
    assert sorted(p.name.split("-")[1] for p in tmp_path.glob("mtcnn-*.onnx")) == ["onet", "pnet", "rnet"]
