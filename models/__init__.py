"""Pixels to faces to vectors: reading photos (`models.image`), MTCNN detection (`models.detect`), 5-point
alignment (`models.align`), the extractor (`models.extractor`) and the training toolkit.

Importing the package imports nothing heavy (only `pathlib`, for where the shipped model lies): `facesearch
--help` must not pay for NumPy, OpenCV or ONNX Runtime. Import the module you need; the detector and the
extractor make their ONNX Runtime sessions on first use, and only training imports TensorFlow.
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # the shipped model's folder
DEFAULT_MODEL = WEIGHTS_DIR / "extractor.keras"
