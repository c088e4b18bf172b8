"""Alignment geometry, image decoding and the detector on real photos."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.align import CHIP_SIZE, TEMPLATE, align, centre_face, similarity_transform
from models.faces import Box, Face
from models.image import ImageError, read_image


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("seed", range(5))
def test_similarity_transform_recovers_a_known_similarity(seed):
    rng = np.random.default_rng(seed)
    angle, scale, shift = rng.uniform(-1, 1), rng.uniform(0.3, 3), rng.uniform(-50, 50, 2)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.uniform(0, 200, (5, 2))
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-7)


def test_similarity_transform_never_reflects():
    mirrored = TEMPLATE * [-1, 1]
    m = similarity_transform(mirrored, TEMPLATE)
    assert np.linalg.det(m[:, :2]) > 0


def test_align_puts_landmarks_on_the_template():
    """Draw dots at five landmarks of a rotated, scaled face; after alignment they sit on the template."""
    m = np.array([[1.6, -0.5, 40.0], [0.5, 1.6, 10.0]])
    landmarks = _apply(m, TEMPLATE).astype(np.float32)
    image = np.zeros((300, 300, 3), np.uint8)
    for x, y in landmarks:
        image[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    face = Face(Box(0, 0, 300, 300), landmarks, 1.0)
    chip = align(image, face)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8
    for x, y in TEMPLATE:
        assert chip[int(round(y)), int(round(x))].max() > 100
    assert image.sum() == 255 * 3 * 25 * 5  # the input is left unchanged


def test_aligning_an_aligned_chip_changes_almost_nothing():
    rng = np.random.default_rng(0)
    chip = (rng.uniform(0, 255, (CHIP_SIZE, CHIP_SIZE, 3))).astype(np.uint8)
    chip = np.asarray(Image.fromarray(chip).resize((28, 28)).resize((CHIP_SIZE, CHIP_SIZE), Image.BILINEAR))
    again = align(chip, Face(Box(0, 0, CHIP_SIZE, CHIP_SIZE), TEMPLATE.astype(np.float32), 1.0))
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(again[inner].astype(int) - chip[inner].astype(int)).mean() < 1.0


def test_centre_face_sits_in_the_middle():
    f = centre_face(160, 200)
    cx, cy = (f.box.x0 + f.box.x1) / 2, (f.box.y0 + f.box.y1) / 2
    assert abs(cx - 80) < 1e-6 and abs(cy - 100) < 1e-6 and f.score == 0.0


def test_read_image_applies_exif_orientation(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    img.save(tmp_path / "o6.jpg", exif=exif.tobytes(), quality=95)
    arr = read_image(tmp_path / "o6.jpg")
    assert arr.shape == (40, 20, 3)
    assert arr[2, 10, 2] > 200 and arr[-3, 10, 0] > 200  # the blue strip is now at the top


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "P"])
def test_read_image_gives_8bit_rgb_for_every_mode(tmp_path, mode):
    img = Image.new("RGB", (16, 12), (10, 200, 30)).convert(mode)
    ext = "tif" if mode in ("CMYK", "I;16") else "png"
    img.save(tmp_path / f"x.{ext}")
    arr = read_image(tmp_path / f"x.{ext}")
    assert arr.shape == (12, 16, 3) and arr.dtype == np.uint8


def test_read_image_names_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageError, match="broken.jpg.*not an image"):
        read_image(bad)
    with pytest.raises(ImageError, match="missing.jpg.*no such file"):
        read_image(tmp_path / "missing.jpg")


def test_read_image_refuses_a_decompression_bomb(tmp_path):
    Image.new("L", (5000, 5000)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="bomb.png.*over the limit"):
        read_image(tmp_path / "bomb.png", max_pixels=10_000_000)


def test_box_scaling_and_rounding():
    b = Box(10.2, 20.6, 30.0, 40.4)
    assert b.scaled(2.0) == Box(20.4, 41.2, 60.0, 80.8)
    assert b.as_list() == [10, 21, 30, 40]
    assert abs(b.area - 19.8 * 19.8) < 1e-9


def test_the_pixel_limit_is_the_projects_not_pillows(tmp_path):
    """Pillow warns from 89.5 MP and refuses from 179 MP; the project's limit is 100 MP: a 95 MP photo is read,
    and one over the limit gets the project's message, whichever side of Pillow's own bound it lies."""
    from bad_inputs import write_bomb_png

    from models.image import MAX_PIXELS

    write_bomb_png(tmp_path / "95mp.png", side=9747)  # 95.0 MP
    assert read_image(tmp_path / "95mp.png").shape == (9747, 9747, 3)
    for side in (10_050, 14_000):  # 101 MP, under Pillow's refusal; 196 MP, over it
        write_bomb_png(tmp_path / f"{side}.png", side=side)
        with pytest.raises(ImageError, match=rf"{side}.png: .*over the limit of {MAX_PIXELS:,}"):
            read_image(tmp_path / f"{side}.png")
