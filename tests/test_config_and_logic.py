"""Configuration from the environment, and the small pure functions behind the answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesearch.api import UNKNOWN, check_name, nearest_person
from facesearch.config import load_config
from facesearch.errors import InvalidName
from models.extractor import DEFAULT_MODEL


def test_config_defaults_to_a_home_folder_with_an_sqlite_file():
    config = load_config(env={})
    assert config.home == (Path.home() / ".facesearch")
    assert config.db_url == f"sqlite:///{Path.home() / '.facesearch' / 'facesearch.db'}"
    assert config.index_path == config.home / "faces.faiss"
    assert config.model_path == DEFAULT_MODEL


def test_config_from_the_environment_and_explicit_values_win(tmp_path):
    env = {"FACESEARCH_HOME": str(tmp_path / "env-home"), "FACESEARCH_DB": "postgresql://u@db/faces",
           "FACESEARCH_MODEL": str(tmp_path / "m.keras")}
    config = load_config(env=env)
    assert config.home == tmp_path / "env-home"
    assert config.db_url == "postgresql://u@db/faces" and config.db_file is None
    assert config.model_path == tmp_path / "m.keras"
    explicit = load_config(home=tmp_path / "mine", env=env)
    assert explicit.home == tmp_path / "mine"
    assert load_config(home=tmp_path / "mine", env={}).db_file == tmp_path / "mine" / "facesearch.db"


def test_nearest_person_takes_the_best_distance_per_person():
    person_of = {1: "Ada", 2: "Ada", 3: "Bob", 4: "Cy"}
    distances = np.array([0.30, 0.25, 0.28, 0.9, np.inf], np.float32)
    ids = np.array([1, 2, 3, 99, -1])  # 99: a gallery face with no person; -1: no hit
    name, distance = nearest_person(distances, ids, person_of)
    assert name == "Ada" and distance == pytest.approx(0.25)
    assert nearest_person(np.array([0.1]), np.array([99]), person_of) == (None, None)


@pytest.mark.parametrize("name", ["", "   ", "unknown", "Unknown", "tab\there", "x" * 201])
def test_unusable_names_are_refused(name):
    with pytest.raises(InvalidName):
        check_name(name)


def test_names_are_stripped():
    assert check_name("  Ada Lovelace ") == "Ada Lovelace"
    assert UNKNOWN == "unknown"


def test_an_onnxruntime_too_old_for_the_graphs_is_named(monkeypatch):
    """The shipped extractor compares 8-bit numbers with Max, which ONNX Runtime runs from 1.24: setup.cfg asks
    for that version, and an older one installed anyway gets a message saying what to install, not ONNX
    Runtime's "Could not find an implementation"."""
    import onnxruntime as ort

    from models import runtime

    setup = (Path(__file__).resolve().parents[1] / "setup.cfg").read_text()
    assert f"onnxruntime>={runtime.MIN_ONNXRUNTIME}\n" in setup
    assert runtime._older("1.23.2", "1.24") and runtime._older("1.9.0", "1.24")
    assert not runtime._older("1.24.1", "1.24") and not runtime._older("1.32.0+cpu", "1.24")

    def no_kernel(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Max(13)")

    monkeypatch.setattr(ort, "InferenceSession", no_kernel)
    monkeypatch.setattr(ort, "__version__", "1.23.2")
    with pytest.raises(RuntimeError, match=r"extractor\.onnx: this graph needs onnxruntime 1\.24 or newer, and "
                                           r"1\.23\.2 is installed: pip install -U"):
        runtime.session(Path("models/weights/extractor.onnx"))
    monkeypatch.setattr(ort, "__version__", "1.24.0")  # a newer one that fails so: its own message stands
    with pytest.raises(RuntimeError, match="Could not find an implementation"):
        runtime.session(Path("models/weights/extractor.onnx"))
