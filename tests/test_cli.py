"""The CLI through CliRunner with the test double of the extractor and the real detector: help, error paths
on missing files and empty homes, and the output formats. (test_end_to_end.py does it with the real model.)"""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO, lfw_photos
from facesearch import home
from facesearch.cli import cli

COMMANDS = ["index", "enroll", "who", "verify", "search", "people", "forget", "status", "reindex", "reembed", "check", "export"]


def run(home, *args, input=None):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)], input=input)


@pytest.mark.parametrize("args", [["--help"], ["who", "--help"], ["index", "--help"]])
def test_help_imports_nothing_heavy(args):
    """Help text must answer at once: no TensorFlow, and not the engine's NumPy/FAISS/OpenCV/SQLAlchemy stack
    either (bench/query_latency.py times it; this checks the imports that would make it slow: SQLAlchemy alone
    took 0.55 s of a 1.09 s `--help` on the AVX2-only machine)."""
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from facesearch.cli import cli\n"
            f"r = CliRunner().invoke(cli, {args!r})\n"
            "assert r.exit_code == 0, r.output\n"
            "heavy = ['tensorflow', 'keras', 'faiss', 'cv2', 'facesearch.api', 'mtcnn', 'sqlalchemy', 'numpy',\n"
            "         'onnxruntime']\n"
            "print(' '.join(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"--help imported {done.stdout.strip()}"


def test_config_defaults_agree_with_the_modules_they_stand_in_for(tmp_path):
    """facesearch.config takes the default model from the `models` package and spells out the SQLite URL itself,
    so that --help need not import NumPy and SQLAlchemy: they must stay what models.extractor and db.session
    say."""
    from db.session import sqlite_url
    from facesearch.config import DEFAULT_MODEL, DB_FILE, load_config
    from models.extractor import DEFAULT_MODEL as EXTRACTOR_DEFAULT

    assert DEFAULT_MODEL == EXTRACTOR_DEFAULT
    config = load_config(home=tmp_path / "home", env={})
    assert config.db_url == sqlite_url(tmp_path / "home" / DB_FILE) and config.model_path == EXTRACTOR_DEFAULT
    assert config.db_file == (tmp_path / "home" / DB_FILE).resolve()


def test_indexing_and_answering_never_import_tensorflow(tmp_path, data_dir):
    """The engine runs its networks on ONNX Runtime: `enroll`, `index`, `who` and `verify` with the shipped model, in a
    fresh process, must leave TensorFlow and Keras unimported (their import alone took 4.5 s of a cold start)."""
    photos = lfw_photos("Colin_Powell")[:3]
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from facesearch.cli import cli\n"
            f"home, photos = {str(tmp_path / 'home')!r}, {[str(p) for p in photos]!r}\n"
            "for args in (['enroll', 'Colin Powell', photos[0]], ['index', photos[1]], ['who', photos[2]],\n"
            "             ['verify', photos[0], photos[2]]):\n"
            "    r = CliRunner().invoke(cli, ['--home', home, *args])\n"
            "    assert r.exit_code in (0, 1) and 'Error' not in r.output, (args, r.output)  # verify: 1 = not same\n"
            "print(' '.join(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"answering imported {done.stdout.strip()}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    example = result.stdout.split("Example:")[1]
    assert "facesearch" in example and command in example


def test_main_help_documents_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert "Exit codes:" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("args, message", [
    (["index", "{missing}"], "no such file or folder"),
    (["enroll", "Ada", "{missing}"], "does not exist"),
    (["who", "{missing}"], "no such file or folder"),
    (["verify", "{missing}", "{missing}"], "does not exist"),
    (["enroll", "--folders", "{missing}"], "does not exist"),
])
def test_a_missing_file_is_named_and_exits_2(tmp_path, args, message):
    missing = tmp_path / "nowhere" / "photo.jpg"
    result = run(tmp_path / "home", *[a.format(missing=missing) for a in args])
    assert result.exit_code == 2 and "photo.jpg" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("args, message", [
    (["who", "{photo}"], "holds no facesearch database yet"),
    (["search", "Ada"], "holds no facesearch database yet"),
    (["forget", "Ada", "--yes"], "holds no facesearch database yet"),
    (["forget", "Ada"], "holds no facesearch database yet"),
])
def test_an_empty_home_is_explained_and_exits_2(tmp_path, data_dir, args, message):
    home = tmp_path / "home"
    photo = lfw_photos("Hans_Blix")[0]
    result = run(home, *[a.format(photo=photo) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "facesearch" in result.stderr and "enroll" in result.stderr
    assert not home.exists()  # asking never creates a home


def test_people_and_status_on_an_empty_home_say_so_and_succeed(tmp_path):
    home = tmp_path / "home"
    people = run(home, "people")
    assert people.exit_code == 0 and people.stdout == "" and "no one is enrolled" in people.stderr
    status = run(home, "status")
    assert status.exit_code == 0
    assert "photos:    0 indexed" in status.stdout and "holds no database yet" in status.stderr
    as_json = json.loads(run(home, "status", "--json").stdout)
    assert as_json["photos"] == 0
    # the shipped model is there before any photo is: status names it, with its thresholds
    from models.extractor import DEFAULT_MODEL, read_info

    version = read_info(DEFAULT_MODEL).version
    assert as_json["model"] == version and as_json["threshold"] > 0 and as_json["naming_threshold"] > 0
    assert f"model:     {version}" in status.stdout and "model:     missing" not in status.stdout
    assert not home.exists()  # asking never creates a home


def test_usage_errors_exit_2(tmp_path, data_dir):
    photo = lfw_photos("Hans_Blix")[0]
    assert run(tmp_path, "who", photo, "--json", "--csv").exit_code == 2
    assert run(tmp_path, "enroll", "Ada").exit_code == 2
    assert run(tmp_path, "enroll", "Ada", photo, "--folders", tmp_path).exit_code == 2
    result = run(tmp_path, "enroll", "unknown", photo)
    assert result.exit_code == 2 and "choose another name" in result.stderr


@pytest.fixture
def small_home(tmp_path, data_dir, fake_models, database_url, monkeypatch):
    """A home with 2 people enrolled (3 photos each) and 8 other photos indexed, with the test double; its
    database is an SQLite file or a PostgreSQL database (FACESEARCH_DB), so every test using it runs on both."""
    monkeypatch.setenv("FACESEARCH_DB", database_url)
    home = tmp_path / "home"
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for p in lfw_photos("Hans_Blix")[3:6] + lfw_photos("Laura_Bush")[3:8]:
        shutil.copy(p, gallery / p.name)
    for name in ("Hans_Blix", "Laura_Bush"):
        result = run(home, "enroll", name, *lfw_photos(name)[:3])
        assert result.exit_code == 0, result.output
        assert f"enrolled {name}: 3 new faces" in result.stdout
    result = run(home, "index", gallery)
    assert result.exit_code == 0, result.output
    assert "indexed 8 new photos" in result.stdout
    return home


def test_who_names_an_enrolled_face_in_text_json_and_csv(small_home):
    photo = lfw_photos("Hans_Blix")[0]  # enrolled: distance 0 even with the test double
    text = run(small_home, "who", photo)
    assert text.exit_code == 0, text.output
    assert "Hans_Blix" in text.stdout and "1 face" in text.stdout

    lines = run(small_home, "who", photo, "--json").stdout.splitlines()
    faces = [json.loads(line) for line in lines]
    main = min(faces, key=lambda f: f["distance"])
    assert main["name"] == "Hans_Blix" and main["distance"] < 1e-3 and main["photo"] == str(photo)
    assert len(main["box"]) == 4 and 0.9 <= main["score"] <= 1

    rows = list(csv.DictReader(io.StringIO(run(small_home, "who", photo, "--csv").stdout)))
    assert rows[0].keys() >= {"photo", "x0", "y0", "x1", "y1", "name", "distance", "score"}
    assert any(r["name"] == "Hans_Blix" for r in rows)


def test_who_reports_a_bad_photo_answers_the_rest_and_exits_2(small_home, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"no jpeg here")
    result = run(small_home, "who", lfw_photos("Hans_Blix")[0], broken, "--json")
    assert result.exit_code == 2
    assert any(json.loads(line)["name"] == "Hans_Blix" for line in result.stdout.splitlines())
    assert "broken.jpg" in result.stderr


def test_who_annotates_one_photo_to_a_file_and_several_to_a_folder(small_home, tmp_path):
    from PIL import Image

    photos = lfw_photos("Hans_Blix")[:2]
    out = tmp_path / "named.png"
    assert run(small_home, "who", photos[0], "--annotate", out).exit_code == 0
    assert Image.open(out).size == Image.open(photos[0]).size
    folder = tmp_path / "annotated"
    assert run(small_home, "who", *photos, "--annotate", folder).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in photos)
    bad = run(small_home, "who", photos[0], "--annotate", tmp_path / "out.txt")
    assert bad.exit_code == 2 and "photo suffix" in bad.stderr
    # several photos and a photo's name: a folder is wanted, and nothing called `several.jpg` is made
    several = run(small_home, "who", *photos, "--annotate", tmp_path / "several.jpg")
    assert several.exit_code == 2 and "wants a folder" in several.stderr
    assert not (tmp_path / "several.jpg").exists()


def test_labels_stay_inside_the_photo(small_home, tmp_path):
    """A face near the edge of a small photo: its label is moved, and cut to the photo's width if need be."""
    from PIL import Image

    from facesearch.drawing import label_place

    for box, label, size in [((0, 0, 40, 40), (90, 20), (60, 60)), ((50, 5, 79, 79), (70, 16), (80, 80)),
                             ((10, 30, 50, 58), (30, 12), (60, 60)), ((5, 5, 20, 20), (300, 400), (100, 50))]:
        x, y, w, h = label_place(box, *label, size)
        assert 0 <= x and x + w <= size[0] - 1 and 0 <= y and y + h <= size[1] - 1, (box, label, size)
    assert label_place((10, 40, 30, 60), 20, 10, (200, 200)) == (10, 30, 20, 10)  # room above: above
    # a 48 px corner of an LFW photo, annotated: still written, its size unchanged
    corner = tmp_path / "corner.png"
    Image.open(lfw_photos("Hans_Blix")[0]).crop((40, 20, 130, 120)).save(corner)
    out = tmp_path / "corner-named.png"
    assert run(small_home, "who", corner, "--annotate", out).exit_code == 0
    assert Image.open(out).size == (90, 100)


def test_a_missing_path_is_one_failure_among_the_answers(small_home, tmp_path):
    photo = lfw_photos("Hans_Blix")[0]
    result = run(small_home, "who", photo, tmp_path / "missing.jpg", "--json")
    assert result.exit_code == 2
    assert any(json.loads(line)["name"] == "Hans_Blix" for line in result.stdout.splitlines())
    assert "missing.jpg: no such file" in result.stderr
    alone = run(small_home, "who", tmp_path / "missing.jpg")
    assert alone.exit_code == 2 and "no such file" in alone.stderr

    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(lfw_photos("Hans_Blix")[8], folder)
    (folder / "notes.txt").write_text("not a photo")
    indexed = run(small_home, "index", folder, tmp_path / "gone")
    assert indexed.exit_code == 2, indexed.output
    assert "indexed 1 new photos" in indexed.stdout and "gone: no such file or folder" in indexed.stdout
    assert str(folder / "notes.txt") in indexed.stdout  # the file skipped is named


def test_index_says_when_a_folder_holds_no_photos(small_home, tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "letter.txt").write_text("no photo here")
    result = run(small_home, "index", folder)
    assert result.exit_code == 0
    assert f"no photos found in {folder}" in result.stderr and str(folder / "letter.txt") in result.stdout


def test_who_with_no_one_enrolled(tmp_path, data_dir, fake_models):
    home = tmp_path / "home"
    assert run(home, "index", lfw_photos("Hans_Blix")[0]).exit_code == 0
    result = run(home, "who", lfw_photos("Hans_Blix")[1])
    assert result.exit_code == 2 and "no one is enrolled" in result.stderr


def test_search_people_forget_and_status(small_home):
    found = run(small_home, "search", "Laura_Bush", "--json")
    assert found.exit_code in (0, 1)
    for line in found.stdout.splitlines():
        hit = json.loads(line)
        assert hit["name"] == "Laura_Bush" and hit["distance"] < 0.3 and len(hit["box"]) == 4

    unknown = run(small_home, "search", "Nobody")
    assert unknown.exit_code == 2 and "no one named 'Nobody'" in unknown.stderr and "Hans_Blix" in unknown.stderr

    people = run(small_home, "people", "--json")
    assert [json.loads(line)["name"] for line in people.stdout.splitlines()] == ["Hans_Blix", "Laura_Bush"]
    assert all(json.loads(line)["enrolled_faces"] == 3 for line in people.stdout.splitlines())

    status = json.loads(run(small_home, "status", "--json").stdout)
    assert (status["photos"], status["people"], status["enrolled_photos"]) == (8, 2, 6)
    assert status["index_size"] == status["faces"]

    declined = run(small_home, "forget", "Hans_Blix", input="n\n")
    assert declined.exit_code == 1 and "Forget Hans_Blix and their 3 enrolled faces?" in declined.stderr
    gone = run(small_home, "forget", "Hans_Blix", input="y\n")
    assert gone.exit_code == 0 and "3 enrolled faces removed" in gone.stdout
    after = json.loads(run(small_home, "status", "--json").stdout)
    assert (after["people"], after["index_size"], after["enrolled_photos"]) == (1, status["index_size"] - 3, 3)
    assert run(small_home, "forget", "Hans_Blix", "--yes").exit_code == 2


def test_verify_exit_codes_with_a_photo_without_a_face(small_home, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (160, 160), (90, 90, 90)).save(blank)
    photo = lfw_photos("Hans_Blix")[0]
    same = run(small_home, "verify", photo, photo)
    assert same.exit_code == 0 and same.stdout.startswith("same person: distance 0.000")
    assert "under 0.300, the threshold for 1 false accept in 100 comparisons" in same.stdout
    no_face = run(small_home, "verify", photo, blank)
    assert no_face.exit_code == 2 and "blank.jpg: no face found" in no_face.stderr
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    bad = run(small_home, "verify", broken, photo)
    assert bad.exit_code == 2 and "broken.png" in bad.stderr


def test_a_missing_model_is_explained(tmp_path, data_dir):
    photo = lfw_photos("Hans_Blix")[0]
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--model", str(tmp_path / "none.keras"),
                                      "verify", str(photo), str(photo)])
    assert result.exit_code == 2
    assert "none.keras" in result.stderr and "FACESEARCH_MODEL" in result.stderr


def test_after_a_model_change_reindex_makes_the_home_searchable_again(small_home, monkeypatch):
    from fakes import FakeExtractor

    newer = FakeExtractor(version="fake-test-v2", seed=1)
    monkeypatch.setattr(home, "load_extractor", lambda config: newer)
    photo = lfw_photos("Hans_Blix")[0]
    stale = run(small_home, "who", photo)
    assert stale.exit_code == 2 and "Run: facesearch reindex" in stale.stderr
    status = run(small_home, "status")
    assert "of other models" in status.stdout and "facesearch reindex" in status.stderr
    result = run(small_home, "reindex")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("re-embedded ") and "of 14 photos" in result.stdout
    assert json.loads(run(small_home, "status", "--json").stdout)["stale_faces"] == 0
    answers = [json.loads(line) for line in run(small_home, "who", photo, "--json").stdout.splitlines()]
    assert any(a["name"] == "Hans_Blix" and a["distance"] < 1e-3 for a in answers)


def test_version_answers_installed_or_not():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip()


def test_index_engine_options_fail_clearly(tmp_path, data_dir, fake_models):
    photo = lfw_photos("Hans_Blix")[0]
    unreachable = run(tmp_path, "index", "--engine", "ray", "--address", "127.0.0.1:1", photo)
    assert unreachable.exit_code == 2 and "no Ray cluster answers at 127.0.0.1:1" in unreachable.stderr
    assert "--engine local" in unreachable.stderr
    misplaced = run(tmp_path, "index", "--address", "auto", photo)
    assert misplaced.exit_code == 2 and "--address is for --engine ray" in misplaced.output


def test_two_homes_on_one_database_answer_who_alike(tmp_path, data_dir, fake_models, database_url, monkeypatch):
    """Two machines (two homes, each with its own FAISS index) sharing one database, SQLite or PostgreSQL:
    what one enrolls and indexes, the other finds, and `who` answers the same on both."""
    monkeypatch.setenv("FACESEARCH_DB", database_url)
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(first, "enroll", "Hans_Blix", *lfw_photos("Hans_Blix")[:3]).exit_code == 0
    assert run(first, "index", *lfw_photos("Laura_Bush")[3:6]).exit_code == 0
    queries = [lfw_photos("Hans_Blix")[0], lfw_photos("Laura_Bush")[0], lfw_photos("Hans_Blix")[4]]

    def who(home):
        result = run(home, "who", *queries, "--json")
        assert result.exit_code == 0, result.output
        answers = [json.loads(line) for line in result.stdout.splitlines()]
        return sorted((a["photo"], a["name"], round(a["distance"], 4)) for a in answers)

    assert who(second) == who(first) and any(name == "Hans_Blix" for _, name, _ in who(second))
    assert run(second, "enroll", "Laura_Bush", *lfw_photos("Laura_Bush")[:3]).exit_code == 0
    after = who(first)  # the first home's saved index catches up with what the second wrote
    assert after == who(second) and any(name == "Laura_Bush" for _, name, _ in after)


def test_a_database_password_is_never_shown(tmp_path):
    url = "postgresql+psycopg://ada:s3cret-word@127.0.0.1:1/gallery"  # nothing listens on port 1
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--db", url, "status"])
    assert result.exit_code == 2 and "cannot open the database" in result.output
    assert "s3cret-word" not in result.output and "ada:***@127.0.0.1:1/gallery" in result.output


def test_a_reader_at_a_terminal_gets_headed_columns(small_home, monkeypatch):
    """Headers go to a terminal only: piped output stays one line per answer (--json and --csv are the
    stable formats for programs)."""
    from facesearch import cli as cli_module

    photo = lfw_photos("Hans_Blix")[0]
    piped = run(small_home, "who", photo)
    assert "box (x0 y0 x1 y1)" not in piped.stdout
    monkeypatch.setattr(cli_module, "on_terminal", lambda: True)
    who = run(small_home, "who", photo)
    assert who.exit_code == 0 and who.stdout.splitlines()[0].split() == ["box", "(x0", "y0", "x1", "y1)", "name",
                                                                         "distance"]
    found = run(small_home, "search", "Hans_Blix")
    assert found.exit_code == 0 and found.stdout.startswith("distance  photo  box (x0 y0 x1 y1)")
    assert run(small_home, "people").stdout.split()[0] == "name"
    # and both say which threshold named the faces (the double has no false-accept curve: its own threshold)
    for result in (who, found):
        assert "threshold 0.3000 (the model's one-to-one threshold: the model has no false-accept curve)" in result.stderr
