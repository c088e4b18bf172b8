"""`enroll` questions every new face before it becomes someone's reference face, and a wrong enrolment is mended
with `move` or `reject` instead of `forget` (LFW photos, the shipped extractor, its verification threshold)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import lfw_photos
from facesearch import api
from facesearch.cli import cli
from facesearch.config import load_config
from facesearch.organise import move, reject


def enrolled_rows(config, tmp_path) -> list[tuple[str, int, str | None]]:
    """(photo path, face id, the person it is enrolled as or None) of every face stored by `enroll`, as
    `export` lists them (a face no one's any more may still be named by match, like any face)."""
    out = tmp_path / "export"
    api.export(out, config, formats=("json",))
    document = json.loads((out / "facesearch.json").read_text())
    return [(p["path"], f["face_id"], f["name"] if f["name_source"] == "enrolled" else None)
            for p in document["photos"] for f in p["faces"] if f["kind"] == "enrolled"]


def enrolled_faces(config, tmp_path) -> dict[str, tuple[int, str | None]]:
    """Photo path -> (face id, the person it is enrolled as or None) of every face stored by `enroll`."""
    return {path: (face_id, name) for path, face_id, name in enrolled_rows(config, tmp_path)}


def test_a_face_of_someone_else_is_refused_unless_forced(tmp_path, data_dir, shipped_model):
    config = load_config(home=tmp_path / "home", env={})
    powell, blair = lfw_photos("Colin_Powell"), lfw_photos("Tony_Blair")
    assert len(api.enroll("Colin_Powell", powell[:3], config).added) == 3
    assert len(api.enroll("Tony_Blair", blair[:3], config).added) == 3

    report = api.enroll("Colin_Powell", [powell[3], blair[3]], config)
    assert report.added == (str(powell[3]),)
    ((path, why),) = report.refused
    assert path == str(blair[3]) and "nearer to Tony_Blair's faces" in why and "Colin_Powell's other faces" in why

    # the command line names the photo and the distances, says how to enroll it anyway, and exits with 1
    result = CliRunner().invoke(cli, ["--home", str(config.home), "enroll", "Colin_Powell", str(blair[4])])
    assert result.exit_code == 1
    assert str(blair[4]) in result.output and "Tony_Blair" in result.output and "--force" in result.output
    assert str(blair[4]) not in enrolled_faces(config, tmp_path)

    forced = api.enroll("Colin_Powell", [blair[4]], config, force=True)
    assert forced.added == (str(blair[4]),) and forced.doubted and not forced.refused


def test_a_known_face_under_a_new_name_is_refused(tmp_path, data_dir, shipped_model):
    """The first photo of a new person has no face of theirs to compare with: it is in doubt when it lies
    within the threshold of someone already enrolled."""
    config = load_config(home=tmp_path / "home", env={})
    rumsfeld = lfw_photos("Donald_Rumsfeld")
    api.enroll("Donald_Rumsfeld", rumsfeld[:3], config)
    report = api.enroll("Someone_Else", [rumsfeld[3]], config)
    assert not report.added
    ((path, why),) = report.refused
    assert "Donald_Rumsfeld under another name?" in why
    assert api.enroll("Someone_Else", [lfw_photos("Hans_Blix")[0]], config).added  # a stranger is not in doubt


def test_a_wrong_enrolment_is_mended_by_move_or_reject(tmp_path, data_dir, shipped_model):
    config = load_config(home=tmp_path / "home", env={})
    powell, blair = lfw_photos("Colin_Powell"), lfw_photos("Tony_Blair")
    api.enroll("Colin_Powell", powell[:3], config)
    api.enroll("Tony_Blair", blair[:3], config)
    api.enroll("Colin_Powell", blair[3:5], config, force=True)  # two wrong enrolments
    faces = enrolled_faces(config, tmp_path)
    wrong = [faces[str(p)][0] for p in blair[3:5]]
    assert [faces[str(p)][1] for p in blair[3:5]] == ["Colin_Powell"] * 2

    probe = blair[6]
    assert api.who([probe], config)[0].faces[0].name in ("Colin_Powell", "Tony_Blair")
    move([wrong[0]], "unknown", config)
    reject([wrong[1]], "Colin_Powell", config)
    faces = enrolled_faces(config, tmp_path)
    # both faces are still stored, no one's reference any more
    assert [faces[str(p)] for p in blair[3:5]] == [(wrong[0], None), (wrong[1], None)]
    assert {p.name: p.enrolled_faces for p in api.people(config)} == {"Colin_Powell": 3, "Tony_Blair": 3}
    assert api.who([probe], config)[0].faces[0].name == "Tony_Blair"

    # enrolling such a photo again gives its stored face back, not a second one
    assert api.enroll("Tony_Blair", [blair[3]], config).added == (str(blair[3]),)
    rows = [r for r in enrolled_rows(config, tmp_path) if r[0] == str(blair[3])]
    assert rows == [(str(blair[3]), wrong[0], "Tony_Blair")]
    # and moving an enrolled face to the right person works as for any face
    move([wrong[1]], "Tony_Blair", config)
    assert enrolled_faces(config, tmp_path)[str(blair[4])] == (wrong[1], "Tony_Blair")
