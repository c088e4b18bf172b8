"""How the `facesearch` command writes results on stdout: one helper each for JSON lines (`json_line`), CSV
(`csv_rows`) and aligned text tables (`table`), and `rounded` for the distances and scores they show.

A record is a plain dict of the values a result holds; `json_line` turns paths into text, boxes into
[x0, y0, x1, y1] lists, tuples into lists and NumPy numbers into Python ones, so a command never formats JSON by
hand. Numbers are not rounded unless the command asks (`rounded`): a false-accept rate of 1e-5 must stay one.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click


def rounded(value: float | None, places: int = 4) -> float | None:
    """A distance or a score as the command shows it: 4 decimals (None stays None)."""
    return None if value is None else round(float(value), places)


def plain(value):
    """`value` as JSON holds it: Path -> str, a box -> [x0, y0, x1, y1], tuple -> list, NumPy number -> Python."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "as_list"):
        return value.as_list()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # a NumPy scalar
    return value


def json_line(record: dict) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(plain(record)))


def csv_rows(columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """A header line, then one CSV line per row, on stdout (None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([plain(v) for v in row])
    click.echo(buffer.getvalue(), nl=False)


@dataclass(frozen=True)
class Column:
    title: str
    width: int = 0  # at least this many characters
    right: bool = False  # aligned right (numbers), else left


def table(columns: Sequence[Column], rows: Iterable[Sequence], header: bool = True, gap: str = "  ") -> None:
    """Rows as aligned text on stdout, `gap` between columns; with `header`, the columns' titles first."""
    def line(cells: Sequence) -> str:
        parts = [f"{c!s:>{col.width}}" if col.right else f"{c!s:<{col.width}}" for col, c in zip(columns, cells)]
        return gap.join(parts).rstrip()

    if header:
        click.echo(line([c.title for c in columns]))
    for row in rows:
        click.echo(line(row))
