"""Pixels to faces to vectors: reading photos (`models.image`), MTCNN detection (`models.detect`,
`models.cascade`, `models.graphs`), 5-point alignment (`models.align`), the extractor's runtime
(`models.extractor`, `models.graph_check`, `models.runtime`), thresholds and clustering. The training toolkit
lives apart, in `models.training`, which none of these modules imports.

Importing the package imports nothing heavy (only `pathlib`, for where the shipped model lies): `facesearch
--help` must not pay for NumPy, OpenCV or ONNX Runtime. Import the module you need; the detector and the
extractor make their ONNX Runtime sessions on first use, and only training imports TensorFlow.
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # the shipped model's folder
DEFAULT_MODEL = WEIGHTS_DIR / "extractor.keras"
