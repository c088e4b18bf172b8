"""Pixels to faces to vectors: reading photos (`models.image`), MTCNN detection (`models.detect`), 5-point
alignment (`models.align`), the extractor (`models.extractor`) and the training toolkit.

Importing the package imports nothing: `facesearch --help` must not pay for OpenCV or TensorFlow. Import the
module you need; the detector and the extractor load TensorFlow on first use.
"""
