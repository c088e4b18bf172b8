"""One naming rule (`indexer/library.py`): `who`, `search`, `export` and `people` give every face the same name.

A gallery of five men of similar age and look (LFW, the shipped extractor), searched with a threshold three
times the calibrated one, so that many faces fall within reach of two or more people: the case where a search
by distance alone lists a face under one name while `who` gives it another. Corrections are part of the rule
too: one face is given to a person by hand, another rejected for the person it matches.
"""
from __future__ import annotations

import json

from conftest import lfw_photos
from facesearch import api, home
from facesearch.config import load_config
from facesearch.organise import move, reject

PEOPLE = ("Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "George_W_Bush", "Gerhard_Schroeder")
STRANGERS = ("Jacques_Chirac", "John_Ashcroft", "Hans_Blix")


def test_who_search_export_and_people_name_every_face_alike(tmp_path, data_dir, shipped_model):
    config = load_config(home=tmp_path / "home", env={})
    threshold = 3 * api.load_extractor(config).info.threshold
    config = load_config(home=tmp_path / "home", env={}, threshold=threshold)
    gallery_photos = []
    for person in PEOPLE:
        photos = lfw_photos(person)
        assert len(api.enroll(person, photos[:2], config).added) == 2
        gallery_photos += photos[2:9]
    for person in STRANGERS:
        gallery_photos += lfw_photos(person)[:4]
    api.index(gallery_photos, config)

    def who_names() -> dict[int, str]:
        return {f.face_id: f.name for a in api.who(gallery_photos, config) for f in a.faces if f.face_id is not None}

    named = who_names()
    # the case the rule is for: faces within the threshold of two or more people's reference faces
    from indexer.library import faces_named

    with home.gallery(config, home.load_extractor(config).info, create=False) as gallery:
        person_of = gallery.person_faces()
        in_reach: dict[int, set[str]] = {}
        for person in PEOPLE:
            _, refs = gallery.vectors_of(person)
            for ids, _ in gallery.index.within(refs, threshold):
                for i in ids.tolist():
                    if i not in person_of:
                        in_reach.setdefault(i, set()).add(person)
        assert sum(len(p) > 1 for p in in_reach.values()) >= 5, "the gallery should hold contested faces"
        # corrections: a contested face given by hand to its second person, another rejected for its match
        contested = sorted(i for i, p in in_reach.items() if len(p) > 1)
        moved_face, rejected_face = contested[0], contested[1]
    second = sorted(in_reach[moved_face] - {named[moved_face]})[0]
    move([moved_face], second, config)
    was = named[rejected_face]
    reject([rejected_face], was, config)
    named = who_names()
    assert named[moved_face] == second and named[rejected_face] != was

    export_dir = tmp_path / "export"
    api.export(export_dir, config, formats=("json",))
    document = json.loads((export_dir / "facesearch.json").read_text())
    exported = {f["face_id"]: f["name"] or api.UNKNOWN for p in document["photos"] for f in p["faces"]
                if f["kind"] == "indexed"}
    assert exported == named

    photo_of = {f.face_id: str(a.photo) for a in api.who(gallery_photos, config) for f in a.faces}
    counts = {p.name: p.photos for p in api.people(config)}
    for person in PEOPLE:
        want_faces = {i for i, n in named.items() if n == person}
        sightings = api.search(person, config)
        # one entry per photo, each the photo's nearest face of that person
        assert {s.photo for s in sightings} == {photo_of[i] for i in want_faces}
        assert all(s.face_id in want_faces for s in sightings)
        assert counts[person] == len(sightings)
        with home.gallery(config, home.load_extractor(config).info, create=False) as gallery:
            assert set(faces_named(gallery, person, threshold, config.k)) == want_faces
    # a face is under at most one name: no face is listed by the searches of two people
    listed = [s.face_id for person in PEOPLE for s in api.search(person, config)]
    assert len(listed) == len(set(listed))
    assert rejected_face not in {s.face_id for s in api.search(was, config)}
