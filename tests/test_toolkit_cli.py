"""The toolkit's commands from the CLI: calibrate on a folder of people, report, evaluate and train
arguments; each with its error path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import lfw_photos
from facesearch.cli import cli

PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]


def run(home: Path, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, data_dir) -> Path:
    """A user's labelled photos: six people, six photos each."""
    root = tmp_path_factory.mktemp("labelled")
    for name in PEOPLE:
        (root / name).mkdir()
        for p in lfw_photos(name)[:6]:
            shutil.copy(p, root / name / p.name)
    return root


def test_calibrate_stores_a_threshold_that_verify_then_uses(labelled, tmp_path, shipped_model):
    home = tmp_path / "home"
    result = run(home, "calibrate", labelled, "--far", "0.05")
    assert result.exit_code == 0, result.output
    stored = json.loads((home / "calibration.json").read_text())
    assert stored["far"] == 0.05 and stored["people"] == 6 and stored["pairs_same"] == 6 * 15
    assert stored["far_measured"] <= 0.05 and 0.0 <= stored["tar"] <= 1.0
    assert f"threshold {stored['threshold']:.4f} for FAR 0.05" in result.stdout
    a, b = lfw_photos("Colin_Powell")[10:12]
    verdict = run(home, "verify", a, b, "--json")
    assert verdict.exit_code in (0, 1), verdict.output
    v = json.loads(verdict.stdout)
    assert v["far"] == 0.05 and v["threshold"] == pytest.approx(stored["threshold"], abs=1e-4)
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["threshold"] == pytest.approx(stored["threshold"], abs=1e-4) or status["note"]


def test_calibrate_dry_run_stores_nothing(labelled, tmp_path, shipped_model):
    result = run(tmp_path / "home", "calibrate", labelled, "--far", "0.05", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "not stored" in result.stdout and not (tmp_path / "home" / "calibration.json").exists()


def test_calibrate_needs_two_people(labelled, tmp_path, shipped_model):
    one = tmp_path / "one"
    shutil.copytree(labelled / PEOPLE[0], one / PEOPLE[0])
    result = run(tmp_path / "home", "calibrate", one)
    assert result.exit_code == 2
    assert "at least two people" in result.stderr and str(one) in result.stderr


def test_calibrate_a_missing_folder_is_an_error(tmp_path):
    result = run(tmp_path / "home", "calibrate", tmp_path / "nowhere")
    assert result.exit_code == 2 and "nowhere" in result.stderr


def test_report_from_the_cli(labelled, tmp_path):
    result = run(tmp_path / "home", "report", labelled, "--out", tmp_path / "rep", "--max-photos", "12")
    assert result.exit_code == 0, result.output
    page = Path(result.stdout.strip())
    assert page.exists() and page.name == "report.md"
    assert (tmp_path / "rep" / "faces.csv").exists()


def test_report_of_something_that_is_no_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "home", "report", tmp_path / "empty", "--out", tmp_path / "rep")
    assert result.exit_code == 2 and "empty" in result.stderr


def test_train_refuses_a_bad_split(tmp_path):
    result = run(tmp_path / "home", "train", "--run", tmp_path / "r", "--split", "0.5,0.5")
    assert result.exit_code == 2 and "train,validation,test" in result.output


def test_train_without_data_says_where_to_point(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESEARCH_DATA", str(tmp_path / "no-data"))
    result = run(tmp_path / "home", "train", "--run", tmp_path / "r", "--steps", "1")
    assert result.exit_code == 2 and "FACESEARCH_DATA" in result.stderr


def test_train_without_tensorflow_says_what_to_install(tmp_path, monkeypatch):
    """The engine is installed without TensorFlow; the commands that train say how to add it."""
    from facesearch import toolkit

    def no_tensorflow(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(toolkit, "train", no_tensorflow)
    result = run(tmp_path / "home", "train", "--run", tmp_path / "r", "--steps", "1")
    assert result.exit_code == 2 and "pip install 'facesearch[train]'" in result.stderr


def test_evaluate_a_run_without_test_identities_is_an_error(tmp_path, shipped_model):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "split.csv").write_text("identity,split\na,train\nb,val\n")
    result = run(tmp_path / "home", "evaluate", "--out", tmp_path / "ev", "--run", run_dir, "--no-lfw")
    assert result.exit_code == 2 and "no test identities" in result.stderr


def test_evaluate_with_a_missing_model_names_it(tmp_path):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "--model", str(tmp_path / "none.keras"),
                                      "evaluate", "--out", str(tmp_path / "ev"), "--no-lfw"])
    assert result.exit_code == 2 and "none.keras" in result.stderr
