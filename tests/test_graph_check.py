"""`--model` refuses ONNX graphs that keep data in other files or use operators no extractor needs, before ONNX
Runtime sees them (issue 23, item 5; `models/graph_check.py`)."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from conftest import lfw_photos
from facesearch.cli import cli
from models.extractor import Extractor, ModelMissing
from models.graph_check import UnsafeGraph, check_graph, graph_ops
from models.graphs import mtcnn_graph


def _model(nodes, initializers=(), functions=(), opsets=(("", 17),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], list(initializers))
    return helper.make_model(graph, functions=list(functions),
                             opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _external(name: str, location: str) -> TensorProto:
    """A 4x4 weight whose numbers the runtime would read from `location`."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        t.external_data.add(key=key, value=value)
    return t


def _weight(name: str = "w") -> TensorProto:
    return numpy_helper.from_array(np.eye(4, dtype=np.float32), name)


def test_the_walk_reads_the_operators_the_onnx_package_reads(shipped_model):
    graphs = {"extractor": shipped_model.with_suffix(".onnx").read_bytes()}
    graphs.update((name, mtcnn_graph(name)) for name in ("pnet", "rnet", "onet"))
    for name, data in graphs.items():
        want = Counter((n.domain, n.op_type) for n in onnx.load_from_string(data).graph.node)
        assert graph_ops(data) == want, name
        check_graph(data, name)  # the shipped and built graphs pass


def test_a_plain_graph_passes():
    check_graph(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_weight()]).SerializeToString())


@pytest.mark.parametrize("where", ["initializer", "constant", "sparse"])
def test_data_in_another_file_is_refused_wherever_the_tensor_is(where):
    outside = _external("w", "/etc/passwd")
    if where == "initializer":
        model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [outside])
    elif where == "constant":
        model = _model([helper.make_node("Constant", [], ["w"], value=outside),
                        helper.make_node("MatMul", ["x", "w"], ["y"])])
    else:
        values = _external("w", "../../secrets.bin")
        values.dims[:] = [2]
        indices = numpy_helper.from_array(np.array([0, 5], np.int64), "i")
        sparse = helper.make_sparse_tensor(values, indices, [4, 4])
        model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])])
        model.graph.sparse_initializer.append(sparse)
    with pytest.raises(UnsafeGraph, match=r"evil\.onnx: refused: its tensor w keeps its data in another file"):
        check_graph(model.SerializeToString(), "evil.onnx")


def test_a_file_saved_with_external_data_by_the_onnx_package_is_refused(tmp_path):
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_weight()])
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    with pytest.raises(UnsafeGraph, match="keeps its data in another file"):
        check_graph((tmp_path / "m.onnx").read_bytes(), "m.onnx")


def test_unexpected_operators_subgraphs_and_functions_are_refused():
    custom = _model([helper.make_node("Exec", ["x"], ["y"], domain="evil.ops")], opsets=[("", 17), ("evil.ops", 1)])
    with pytest.raises(UnsafeGraph, match=r"the operator evil\.ops\.Exec, which no face extractor needs"):
        check_graph(custom.SerializeToString())

    body = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "body", [],
                             [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    branch = _model([helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)])
    with pytest.raises(UnsafeGraph, match="its If node runs a subgraph") as refused:
        check_graph(branch.SerializeToString())
    assert "the operator If, which no face extractor needs" in str(refused.value)

    function = helper.make_function("mine", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    with_function = _model([helper.make_node("Twice", ["x"], ["y"], domain="mine")], functions=[function],
                           opsets=[("", 17), ("mine", 1)])
    with pytest.raises(UnsafeGraph, match="defines functions of its own"):
        check_graph(with_function.SerializeToString())


def test_a_file_that_is_not_an_onnx_model_is_named(shipped_model):
    data = shipped_model.with_suffix(".onnx").read_bytes()
    rng = np.random.default_rng(0)
    for broken in (b"", data[:5000], rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), b"\x0f" * 64):
        with pytest.raises(UnsafeGraph, match=r"^x\.onnx: not an ONNX model \("):
            check_graph(broken, "x.onnx")


def _hostile_model(folder: Path, shipped_model: Path) -> Path:
    """A model folder whose graph reads its weights from a file outside it, beside the shipped metadata."""
    folder.mkdir()
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_external("w", "/etc/passwd")])
    (folder / "extractor.onnx").write_bytes(model.SerializeToString())
    shutil.copy(shipped_model.with_suffix(".json"), folder / "extractor.json")
    return folder / "extractor.keras"


def test_the_engine_refuses_it_before_onnx_runtime_sees_it(tmp_path, shipped_model, monkeypatch):
    import models.runtime

    weights = _hostile_model(tmp_path / "model", shipped_model)
    monkeypatch.setattr(models.runtime, "batch_session", lambda model: pytest.fail("the runtime was given the graph"))
    with pytest.raises(UnsafeGraph, match="extractor.onnx: refused"):
        Extractor(weights).load()  # were the check after the session is made, the runtime would see the graph


@pytest.mark.parametrize("command", [["who", "{photo}"], ["index", "{photo}"], ["verify", "{photo}", "{photo}"],
                                     ["status"]])
def test_the_cli_names_the_refused_model_and_stops(tmp_path, shipped_model, data_dir, command):
    weights = _hostile_model(tmp_path / "model", shipped_model)
    photo = str(lfw_photos("Hans_Blix")[0])
    args = [a.format(photo=photo) for a in command]
    home = ["--home", str(tmp_path / "home")]
    assert CliRunner().invoke(cli, [*home, "enroll", "Hans Blix", photo]).exit_code == 0  # the shipped model
    result = CliRunner().invoke(cli, [*home, "--model", str(weights), *args])
    if command == ["status"]:  # status still reports on the home, with the reason beside it
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2, result.output
    assert f"{weights.with_suffix('.onnx')}: refused: its tensor w keeps its data in another file" in result.output
    assert "Traceback" not in result.output


def test_damaged_metadata_is_named(tmp_path, shipped_model):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(shipped_model.with_suffix(".onnx"), folder / "extractor.onnx")
    for text, why in (("{not json", "Expecting property name"), (json.dumps({"version": "x"}), "no 'dim' entry"),
                      (json.dumps([1, 2]), "indices")):
        (folder / "extractor.json").write_text(text)
        with pytest.raises(ModelMissing, match=f"extractor.json: not readable as a model's metadata.*{why}"):
            Extractor(folder / "extractor.keras")
