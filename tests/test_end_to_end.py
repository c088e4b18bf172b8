"""The whole engine on real LFW photos, through the real detector and the shipped extractor, from the CLI.

One home is built once for this module: five people enrolled from four photos each (four through
`enroll --folders`, one through `enroll NAME PHOTO...`), and a gallery of 250 photos indexed: ten more
photos of each enrolled person and five photos each of forty other people. Queries use photos that are in
neither. Tests that change a home build a small one of their own.

The accuracy bars are what the shipped extractor, fs-dlib-triplet-20261203-c9a75d2750-q8w7p (dlib's network
ported and fine-tuned; `who` at its threshold for 1 % of strangers, `verify` at 0.0686 = FAR 1e-3 until
2026-12-03, 0.0667 since, the cautious end of its interval), measured on exactly these photos, with a margin of one or
two for a processor that rounds its 8-bit products otherwise: 49 of 50 held-out photos named right, none as
another enrolled person; none of 30 never-enrolled people named; 19 of 20 `verify` pairs right; `search`
finds all 10 gallery photos of each enrolled person and all 50 top-10 hits are right. The bars were set, with
wider margins, from the from-scratch extractors shipped before (the last, fs-triplet-20261129-14fd63087a-q8w7p:
45 of 50 named right, 1 as another person, 2 of 30 strangers named, 43 of 50 top-10 search hits right); each
new model's counts replace them, never loosening them.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import DATA, lfw_photos
from facesearch.cli import cli

ENROLLED = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]
N_ENROLL = 4  # photos enrolled per person: their first four
GALLERY_OWN = slice(4, 14)  # photos of each enrolled person in the gallery
HELD_OUT = slice(14, 24)  # photos of each enrolled person used only as queries
N_OTHERS, OTHERS_EACH = 40, 5  # people in the gallery who are never enrolled, photos of each


def lfw_people() -> list[tuple[str, int]]:
    """(name, number of photos) of every LFW person, most photographed first (ties by name)."""
    with open(DATA / "lfw" / "people.csv", newline="") as f:
        rows = [(r["name"], int(r["images"])) for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def gallery_others() -> list[str]:
    return [name for name, _ in lfw_people() if name not in ENROLLED][:N_OTHERS]


def strangers(n: int = 30) -> list[Path]:
    """One photo each of n people with three photos: never enrolled, not in the gallery."""
    threes = sorted(name for name, count in lfw_people() if count == 3)
    step = len(threes) // n
    return [lfw_photos(name)[0] for name in threes[::step][:n]]


def run(home: Path, *args, input: str | None = None):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)], input=input)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main_face(faces: list[dict], side: int = 160) -> dict | None:
    """The face an LFW photo is labelled for: the largest, weighed by nearness to the centre."""
    def weight(f):
        x0, y0, x1, y1 = f["box"]
        off = (((x0 + x1) / 2 - side / 2) ** 2 + ((y0 + y1) / 2 - side / 2) ** 2) ** 0.5 / side
        return (x1 - x0) * (y1 - y0) * (1 - off)
    return max(faces, key=weight) if faces else None


@pytest.fixture(scope="module")
def home(tmp_path_factory, data_dir, shipped_model) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    people = root / "people"
    for name in ENROLLED[:-1]:
        (people / name).mkdir(parents=True)
        for p in lfw_photos(name)[:N_ENROLL]:
            shutil.copy(p, people / name / p.name)
    result = run(home, "enroll", "--folders", people)
    assert result.exit_code == 0, result.output
    last = ENROLLED[-1]
    result = run(home, "enroll", last, *lfw_photos(last)[:N_ENROLL])
    assert result.exit_code == 0, result.output

    gallery = root / "gallery"
    for name in ENROLLED:
        (gallery / name).mkdir(parents=True)
        for p in lfw_photos(name)[GALLERY_OWN]:
            shutil.copy(p, gallery / name / p.name)
    for name in gallery_others():
        (gallery / "others").mkdir(parents=True, exist_ok=True)
        for p in lfw_photos(name)[:OTHERS_EACH]:
            shutil.copy(p, gallery / "others" / p.name)
    result = run(home, "index", gallery)
    assert result.exit_code == 0, result.output
    assert "indexed 250 new photos" in result.stdout
    return home


def test_the_gallery_holds_every_photo_once(home):
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["photos"] == 250 and status["failed"] == 0 and status["failures"] == []
    assert status["people"] == 5 and status["enrolled_photos"] == 5 * N_ENROLL
    assert status["gallery_faces"] >= 250 * 0.95  # LFW crops: nearly one face found per photo, some two
    assert status["index_size"] == status["faces"] == status["gallery_faces"] + 5 * N_ENROLL
    assert status["index_type"] == "IDMap2,FlatIP"


def test_people_lists_the_enrolled_with_their_photos(home):
    people = {p["name"]: p for p in json_lines(run(home, "people", "--json").stdout)}
    assert sorted(people) == sorted(ENROLLED)
    assert all(p["enrolled_faces"] == N_ENROLL for p in people.values())
    searched = json_lines(run(home, "search", "Colin_Powell", "--json").stdout)
    assert people["Colin_Powell"]["photos"] == len(searched)


@pytest.fixture(scope="module")
def held_out_answers(home) -> list[tuple[str, dict | None]]:
    """(true name, main face answer) of ten held-out photos of each enrolled person."""
    photos = {p: name for name in ENROLLED for p in lfw_photos(name)[HELD_OUT]}
    result = run(home, "who", *photos, "--json")
    assert result.exit_code == 0, result.output
    by_photo: dict[str, list[dict]] = {}
    for face in json_lines(result.stdout):
        by_photo.setdefault(face["photo"], []).append(face)
    return [(name, main_face(by_photo.get(str(p), []))) for p, name in photos.items()]


def test_who_names_enrolled_people_in_photos_not_enrolled(home, held_out_answers):
    threshold = json.loads(run(home, "status", "--json").stdout)["threshold"]
    found = [a for _, a in held_out_answers if a is not None]
    assert len(found) >= 48  # a face is found in (nearly) every LFW crop
    right = sum(1 for name, a in held_out_answers if a is not None and a["name"] == name)
    wrong = sum(1 for name, a in held_out_answers if a is not None and a["name"] not in (name, "unknown"))
    assert right >= 47, f"{right} of 50 named correctly (measured 49)"
    assert wrong <= 1, f"{wrong} of 50 named as another enrolled person (measured 0)"
    for _, a in held_out_answers:
        if a is not None:
            assert (a["name"] != "unknown") == (a["distance"] < threshold)
            assert a["nearest"] in ENROLLED


@pytest.fixture(scope="module")
def stranger_answers(home) -> list[dict]:
    """The main face answer for one photo each of 30 people never enrolled (and not in the gallery)."""
    photos = strangers()
    result = run(home, "who", *photos, "--json")
    assert result.exit_code == 0, result.output
    by_photo: dict[str, list[dict]] = {}
    for face in json_lines(result.stdout):
        by_photo.setdefault(face["photo"], []).append(face)
    answers = [main_face(by_photo.get(str(p), [])) for p in photos]
    assert sum(a is not None for a in answers) >= 28
    return [a for a in answers if a is not None]


def test_who_says_unknown_for_most_people_never_enrolled(stranger_answers):
    named = [a["name"] for a in stranger_answers if a["name"] != "unknown"]
    assert len(named) <= 2, f"{len(named)} of {len(stranger_answers)} strangers named (measured 0): {named}"


def test_strangers_are_further_from_everyone_than_the_enrolled_from_themselves(home, held_out_answers,
                                                                              stranger_answers):
    """The gap between the median distances, in units of the threshold (each extractor has its own scale: the
    dlib-based one's FAR 1e-3 threshold is 0.069, the from-scratch one's was 0.544): measured 1.14 (0.112
    against 0.034); the from-scratch extractor's bound was 0.28 (0.15 at its threshold)."""
    threshold = json.loads(run(home, "status", "--json").stdout)["threshold"]
    right = statistics.median(a["distance"] for name, a in held_out_answers if a is not None and a["nearest"] == name)
    strange = statistics.median(a["distance"] for a in stranger_answers)
    assert right < threshold < strange
    assert strange - right > 1.0 * threshold, (f"median distance: strangers {strange:.3f}, enrolled people "
                                               f"{right:.3f}, threshold {threshold:.3f}")


def test_who_json_and_csv_agree(home):
    photos = lfw_photos("Tony_Blair")[HELD_OUT][:3]
    as_json = json_lines(run(home, "who", *photos, "--json").stdout)
    rows = list(csv.DictReader(io.StringIO(run(home, "who", *photos, "--csv").stdout)))
    assert len(rows) == len(as_json) >= 3
    for r, j in zip(rows, as_json):
        assert r["photo"] == j["photo"] and r["name"] == j["name"]
        assert [int(r[k]) for k in ("x0", "y0", "x1", "y1")] == j["box"]
        assert float(r["distance"]) == pytest.approx(j["distance"], abs=1e-4)
    text = run(home, "who", photos[0]).stdout
    assert text.startswith(f"{photos[0]}: ") and as_json[0]["name"] in text


def test_who_annotates(home, tmp_path):
    from PIL import Image

    photo = lfw_photos("Tony_Blair")[HELD_OUT][0]
    out = tmp_path / "annotated.jpg"
    result = run(home, "who", photo, "--annotate", out)
    assert result.exit_code == 0 and f"wrote {out}" in result.stderr
    assert Image.open(out).size == (160, 160)


def test_verify_same_and_different_people(home):
    threshold = None
    outcomes = []
    pairs = [(lfw_photos(n)[HELD_OUT][i], lfw_photos(n)[HELD_OUT][i + 5], True) for n in ENROLLED for i in (0, 1)]
    pairs += [(lfw_photos(a)[HELD_OUT][0], lfw_photos(b)[HELD_OUT][1], False)
              for a, b in zip(ENROLLED, ENROLLED[1:] + ENROLLED[:1])]
    pairs += [(lfw_photos(a)[HELD_OUT][2], s, False) for a, s in zip(ENROLLED, strangers()[:5])]
    for a, b, same in pairs:
        result = run(home, "verify", a, b, "--json")
        assert result.exit_code in (0, 1), result.output
        verdict = json.loads(result.stdout)
        assert result.exit_code == (0 if verdict["same"] else 1)
        assert verdict["same"] == (verdict["distance"] < verdict["threshold"])
        threshold = verdict["threshold"]
        outcomes.append(verdict["same"] == same)
    assert 0 < threshold < 2
    assert sum(outcomes) >= 18, f"{sum(outcomes)} of {len(outcomes)} pairs right (measured 19)"

    photo = lfw_photos("Colin_Powell")[HELD_OUT][0]
    itself = run(home, "verify", photo, photo)
    assert itself.exit_code == 0 and itself.stdout.startswith("same person: distance 0.000")
    assert "under 0.067, the threshold for 1 false accept in 1,000 comparisons" in itself.stdout


def test_search_finds_each_person_in_the_gallery_best_match_first(home):
    found = top_right = top_all = 0
    for name in ENROLLED:
        result = run(home, "search", name, "--json")
        assert result.exit_code == 0, result.output
        hits = json_lines(result.stdout)
        distances = [h["distance"] for h in hits]
        assert distances == sorted(distances)
        assert len({h["photo"] for h in hits}) == len(hits)  # one line per photo
        assert all(h["name"] == name for h in hits)
        found += sum(f"/{name}/" in h["photo"] for h in hits)
        top_right += sum(f"/{name}/" in h["photo"] for h in hits[:10])
        top_all += len(hits[:10])
    assert found >= 48, f"{found} of their 50 gallery photos found (measured 50)"
    assert top_right >= top_all - 2, f"{top_right} of the {top_all} best hits right (measured 50 of 50)"
    text = run(home, "search", "George_W_Bush").stdout.splitlines()
    first = json_lines(run(home, "search", "George_W_Bush", "--json").stdout)[0]
    assert text[0].split()[1] == first["photo"]


def test_errors_on_a_built_home(home, tmp_path):
    unknown = run(home, "search", "Nobody_At_All")
    assert unknown.exit_code == 2 and "no one named 'Nobody_At_All'" in unknown.stderr
    assert "George_W_Bush" in unknown.stderr
    missing = run(home, "who", tmp_path / "gone.jpg")
    assert missing.exit_code == 2 and "gone.jpg" in missing.stderr
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a photo")
    bad = run(home, "verify", broken, lfw_photos("Colin_Powell")[0])
    assert bad.exit_code == 2 and "broken.jpg" in bad.stderr
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (160, 160), (200, 200, 200)).save(blank)
    no_face = run(home, "who", blank)
    assert no_face.exit_code == 0 and "0 faces" in no_face.stdout


def test_a_home_changes_index_move_corrupt_and_forget(tmp_path, data_dir, shipped_model):
    """Re-indexing adds nothing, a moved photo is not indexed twice, a damaged file is reported and skipped,
    and forgetting a person removes them from the database and the index."""
    home = tmp_path / "home"
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in lfw_photos("Hugo_Chavez")[4:8] + lfw_photos("Ariel_Sharon")[4:8]:
        shutil.copy(p, folder / p.name)
    (folder / "damaged.jpg").write_bytes(lfw_photos("Hugo_Chavez")[9].read_bytes()[:300])
    (folder / "readme.txt").write_text("not a photo")

    first = run(home, "index", folder)
    assert first.exit_code == 0, first.output
    assert "indexed 8 new photos" in first.stdout and "not photos, skipped: 1 files" in first.stdout
    assert "failed: 1 photos" in first.stdout and "damaged.jpg" in first.stdout
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["failed"] == 1 and status["failures"][0]["photo"].endswith("damaged.jpg")
    assert "damaged.jpg" in run(home, "status").stdout

    again = run(home, "index", folder)
    assert "indexed 0 new photos with 0 faces" in again.stdout and "already indexed: 8 photos" in again.stdout

    moved = folder / "sub" / "renamed.jpg"
    moved.parent.mkdir()
    (folder / lfw_photos("Hugo_Chavez")[4].name).rename(moved)
    after_move = run(home, "index", folder)
    assert "indexed 0 new photos" in after_move.stdout and "(1 moved or renamed)" in after_move.stdout
    assert json.loads(run(home, "status", "--json").stdout)["faces"] == status["faces"]

    for name in ("Hugo_Chavez", "Ariel_Sharon"):
        assert run(home, "enroll", name, *lfw_photos(name)[:3]).exit_code == 0
    before = json.loads(run(home, "status", "--json").stdout)
    assert before["index_size"] == status["index_size"] + 6
    hits = json_lines(run(home, "search", "Hugo_Chavez", "--json").stdout)
    assert hits and all(Path(h["photo"]).exists() for h in hits)  # the moved photo's path was updated

    assert run(home, "forget", "Hugo_Chavez", "--yes").exit_code == 0
    after = json.loads(run(home, "status", "--json").stdout)
    assert after["people"] == 1 and after["index_size"] == before["index_size"] - 3
    assert "Hugo_Chavez" not in run(home, "people").stdout
    gone = run(home, "search", "Hugo_Chavez")
    assert gone.exit_code == 2
    answers = json_lines(run(home, "who", lfw_photos("Hugo_Chavez")[0], "--json").stdout)
    assert all(a["name"] != "Hugo_Chavez" for a in answers)


def test_export_writes_every_photo_and_face_with_the_names_who_gives(home, tmp_path):
    out = tmp_path / "export"
    result = run(home, "export", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "facesearch.json").read_text())
    faces_csv = list(csv.DictReader(open(out / "faces.csv")))
    photos_csv = list(csv.DictReader(open(out / "photos.csv")))
    people_csv = {r["name"]: r for r in csv.DictReader(open(out / "people.csv"))}
    status = json.loads(run(home, "status", "--json").stdout)
    assert len(photos_csv) == len(doc["photos"]) == status["photos"] + status["enrolled_photos"] + status["failed"]
    json_faces = [f for p in doc["photos"] for f in p["faces"]]
    assert len(faces_csv) == len(json_faces) == status["faces"] + status["stale_faces"]
    assert sorted(people_csv) == sorted(ENROLLED) == sorted(p["name"] for p in doc["people"])
    for name in ENROLLED:
        assert int(people_csv[name]["enrolled_faces"]) == N_ENROLL
    # the CSV and the JSON say the same of each face
    by_id = {f["face_id"]: f for f in json_faces}
    for row in faces_csv:
        f = by_id[int(row["face_id"])]
        assert (row["name"] or None) == f["name"] and row["kind"] == f["kind"]
        assert float(row["x0"]) == pytest.approx(f["x0"], abs=1e-3) and len(f["landmarks"]) == 5
    # a gallery face is named as `who` names it
    photos = [p for p in doc["photos"] if p["status"] == "indexed" and p["faces"]][:12]
    answers = json_lines(run(home, "who", *[p["path"] for p in photos], "--json").stdout)
    for p in photos:
        said = sorted((a["name"] if a["name"] != "unknown" else None) or "" for a in answers if a["photo"] == p["path"])
        assert said == sorted(f["name"] or "" for f in p["faces"]), p["path"]
    assert sum(1 for f in json_faces if f["name_source"] == "match") > 20
    # formats one at a time; a file in the way is refused
    only = tmp_path / "only-json"
    assert run(home, "export", only, "--format", "json").exit_code == 0
    assert sorted(x.name for x in only.iterdir()) == ["facesearch.json"]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    refused = run(home, "export", blocker)
    assert refused.exit_code == 2 and str(blocker) in refused.output and "is a file" in refused.output


def person_of_photo(path: str) -> str:
    """The LFW name in a photo's file name (Name_NNNN.jpg)."""
    return Path(path).stem.rsplit("_", 1)[0]


def test_organise_a_library_cluster_name_and_corrections_that_stick(home, tmp_path):
    """The faces of the forty people never enrolled are grouped, a cluster named, and corrections kept.

    Measured on this home with fs-triplet-20261128-1b4bbfa045: 49 clusters of 157 faces (37 faces left in
    groups of one, 64 matching an enrolled person); 151 of the 157 clustered photos belong to their cluster's
    most frequent person, and 2 of them are photos of enrolled people that were not matched to them. With
    fs-triplet-20261128-4aea0a17f8: 44 clusters of 149 faces (39 alone, 70 matching), 146 of 149 right, 1 of an
    enrolled person. The bars below leave a margin for another model."""
    own = tmp_path / "home"
    shutil.copytree(home, own)
    result = run(own, "cluster")
    assert result.exit_code == 0, result.output
    found = json_lines(run(own, "clusters", "--json", "--samples", "1000").stdout)
    assert len(found) >= 30
    majority = [max(set(names), key=names.count) for names in
                ([person_of_photo(p) for p in c["photos"]] for c in found)]
    clustered = [person_of_photo(p) for c in found for p in c["photos"]]
    right = sum(person_of_photo(p) == m for c, m in zip(found, majority) for p in c["photos"])
    assert right >= 0.85 * len(clustered)
    # the enrolled people's gallery faces are mostly matched to them (who names them), so not clustered
    assert sum(name in ENROLLED for name in clustered) <= 10
    # a rerun forms nothing new and keeps every cluster as it was
    assert "0 new clusters" in run(own, "cluster").stdout
    assert json_lines(run(own, "clusters", "--json", "--samples", "1000").stdout) == found

    # name the largest cluster that holds one person only
    chosen, person = next((c, m) for c, m in zip(found, majority)
                          if all(person_of_photo(p) == m for p in c["photos"]))
    named = run(own, "name", chosen["cluster"], person)
    assert named.exit_code == 0 and f"is now {person}: {chosen['faces']} faces (a new person)" in named.stdout
    assert chosen["cluster"] not in [c["cluster"] for c in json_lines(run(own, "clusters", "--json").stdout)]
    new_photos = lfw_photos(person)[OTHERS_EACH:OTHERS_EACH + 3]  # never indexed
    answers = json_lines(run(own, "who", *new_photos, "--json").stdout)
    assert sum(main_face([a for a in answers if a["photo"] == str(p)])["name"] == person for p in new_photos) >= 2
    assert all(a["face_id"] is None for a in answers)  # not in the gallery: no stored face
    hits = json_lines(run(own, "search", person, "--json").stdout)
    assert set(chosen["photos"]) <= {h["photo"] for h in hits}
    people = {p["name"]: p for p in json_lines(run(own, "people", "--json").stdout)}
    assert (people[person]["enrolled_faces"], people[person]["given_faces"]) == (0, chosen["faces"])

    # "this face is not them" sticks: search leaves it out, who never names it so
    wrong = hits[-1]
    assert run(own, "reject", wrong["face_id"], person).exit_code == 0
    assert wrong["face_id"] not in [h["face_id"] for h in json_lines(run(own, "search", person, "--json").stdout)]
    again = [a for a in json_lines(run(own, "who", wrong["photo"], "--json").stdout) if a["face_id"] == wrong["face_id"]]
    assert len(again) == 1 and again[0]["name"] != person
    # a face moved to someone is theirs from then on; merging into a new name renames them
    assert run(own, "move", wrong["face_id"], "Someone Else").exit_code == 0
    (moved,) = [a for a in json_lines(run(own, "who", wrong["photo"], "--json").stdout)
                if a["face_id"] == wrong["face_id"]]
    assert moved["name"] == "Someone Else" and moved["distance"] < 0.01
    merged = run(own, "merge", "Someone Else", "Someone Renamed")
    assert merged.exit_code == 0, merged.output
    names = [p["name"] for p in json_lines(run(own, "people", "--json").stdout)]
    assert "Someone Renamed" in names and "Someone Else" not in names
    exported = tmp_path / "export"
    assert run(own, "export", exported, "--format", "json").exit_code == 0
    faces = {f["face_id"]: f for p in json.loads((exported / "facesearch.json").read_text())["photos"]
             for f in p["faces"]}
    assert faces[wrong["face_id"]]["name"] == "Someone Renamed"
    assert faces[wrong["face_id"]]["name_source"] == "assigned"

    # a contact sheet per cluster
    sheets = tmp_path / "sheets"
    result = run(own, "clusters", "--sheets", sheets)
    assert result.exit_code == 0, result.output
    left = json_lines(run(own, "clusters", "--json").stdout)
    assert sorted(x.name for x in sheets.iterdir()) == sorted(f"cluster-{c['cluster']}.jpg" for c in left)
    from PIL import Image
    with Image.open(sheets / f"cluster-{left[0]['cluster']}.jpg") as sheet:
        assert sheet.width == 112 * min(8, left[0]["faces"])

    status = json.loads(run(own, "status", "--json").stdout)
    assert status["clusters"] == len(left) and status["clustered_faces"] == sum(c["faces"] for c in left)
    assert status["corrections"] == 1  # the face marked as not `person` (moving it from no one adds none)
    assert "corrections: 1" in run(own, "status").stdout

    # mistakes get a message naming what is wrong
    bad = run(own, "reject", 999999, person)
    assert bad.exit_code == 2 and "no face with id 999999" in bad.stderr
    bad = run(own, "name", 999999, "X")
    assert bad.exit_code == 2 and "no cluster 999999" in bad.stderr
    # an enrolled face given to no one is no one's reference face any more (the enrolment undone)
    before = {p["name"]: p["enrolled_faces"] for p in json_lines(run(own, "people", "--json").stdout)}
    enrolled_face = json_lines(run(own, "who", lfw_photos(ENROLLED[-1])[0], "--json").stdout)[0]["face_id"]
    undone = run(own, "move", enrolled_face, "unknown")
    assert undone.exit_code == 0 and "moved 1 faces to unknown" in undone.stdout, undone.output
    after = {p["name"]: p["enrolled_faces"] for p in json_lines(run(own, "people", "--json").stdout)}
    assert after[ENROLLED[-1]] == before[ENROLLED[-1]] - 1
    bad = run(own, "name", left[0]["cluster"], "unknown")
    assert bad.exit_code == 2 and "choose another name" in bad.stderr
