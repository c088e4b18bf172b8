"""Pixels to faces to vectors: reading photos, MTCNN detection, 5-point alignment, the extractor.

Nothing here imports TensorFlow at import time; the detector and the extractor load on first use.
"""
from models.faces import Box, Face
from models.image import ImageError, read_image
from models.align import CHIP_SIZE, TEMPLATE, align, similarity_transform

__all__ = ["Box", "Face", "ImageError", "read_image", "CHIP_SIZE", "TEMPLATE", "align", "similarity_transform"]
