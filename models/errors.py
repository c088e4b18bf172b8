"""The errors of `models/` a user can meet, under one base class: a photo that cannot be decoded, an extractor
that is missing, a graph the engine refuses. Each message names the file and the problem; the front
(`facesearch/home.py`, `facesearch/answers.py`) turns them into its own errors with advice."""
from __future__ import annotations


class ModelsError(Exception):
    """A photo, a model or a graph the engine cannot use."""


class ImageError(ModelsError, ValueError):
    """A file that could not be decoded as a photo; the message names the file and the problem."""


class ModelMissing(ModelsError, FileNotFoundError):
    """The extractor's weights or metadata file is not where it should be, or cannot be read."""


class UnsafeGraph(ModelsError, ValueError):
    """An ONNX file the engine will not run: not an ONNX model, or holding what an extractor never needs."""
