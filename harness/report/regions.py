"""Generated regions of README.md and docs/*.md: the measured tables, rewritten by the command that measures them.

A region is the text between `<!-- region:NAME -->` and `<!-- /region:NAME -->`. Its first line says which command
wrote it, when, at which commit and on which machine; the rest is a renderer's output. `CATALOG` names every region,
the file it lives in and the function giving its tables' shape, beside the renderer (named as a string: this module
imports no tool, so any layer may call it). `tests/meta/test_doc_regions.py` compares each committed region's tables
with that shape.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


class RegionError(Exception):
    """A region that cannot be found or rewritten; its message is one line."""


@dataclass(frozen=True)
class Table:
    """The shape of one Markdown table a renderer writes: what a stale committed copy would differ in."""

    columns: tuple[str, ...]
    rows: tuple[str, ...] = ()  # the first column's names, where they come from a fixed vocabulary
    all_rows: bool = False  # every name of `rows` must have a row (a vocabulary the table documents)
    more_columns: bool = False  # columns named by the data (releases, fixtures) follow `columns`
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # column -> its fixed vocabulary


@dataclass(frozen=True)
class Region:
    name: str
    path: str  # relative to the repository root
    shape: str  # "module:function" returning the shapes of the tables its renderer writes, in order
    command: str  # what rewrites it ("" where the table documents a vocabulary and is written by hand)


PACKAGE = "offload_conformance.harness"
CATALOG: dict[str, Region] = {
    r.name: r
    for r in (
        Region("failure-classes", "README.md", f"{PACKAGE}.report.regions:failure_classes", ""),
        Region("ledger", "docs/ledger.md", f"{PACKAGE}.ledger.report:region_shape", "nox -s ledger"),
        Region("sweep", "docs/sweep.md", f"{PACKAGE}.report.causes:region_shape", "nox -s sweep"),
        Region("matrix", "docs/findings.md", f"{PACKAGE}.report.history:region_shape", "nox -s matrix"),
        Region("bench", "docs/cost.md", f"{PACKAGE}.tools.bench:region_shape", "nox -s bench"),
        Region("mutants", "docs/mutants.md", f"{PACKAGE}.tools.mutants.report:region_shape", "nox -s mutants"),
        Region("mutants-scores", "README.md", f"{PACKAGE}.tools.mutants.report:region_shape", "nox -s mutants"),
        Region(
            "damage",
            "docs/reliability.md",
            f"{PACKAGE}.tools.damage.run:region_shape",
            "nox -s fuzz -- --damage --examples 1000",
        ),
        Region(
            "llmcompressor",
            "docs/llm-compressor.md",
            f"{PACKAGE}.tools.llmcompressor.report:region_shape",
            "nox -s llmcompressor",
        ),
    )
}


def failure_classes() -> tuple[Table, ...]:
    """README's class table documents every failure class, by name (written by hand: nothing measures it)."""
    from offload_conformance.harness.outcomes import FailureClass

    return (Table(("class", "meaning"), tuple(c.value for c in FailureClass), all_rows=True),)


# A marker is a line of its own, so prose can quote one in backticks.
_MARKER = re.compile(r"^<!-- (/?)region:([\w.-]+) -->[ \t]*$", re.MULTILINE)


def spans(text: str, where: str = "") -> dict[str, tuple[int, int]]:
    """NAME -> (start, end) of every region's body in `text`. An unpaired, nested or repeated marker is an error."""
    found: dict[str, tuple[int, int]] = {}
    open_name, open_end = None, 0
    for m in _MARKER.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if open_name is not None:
                raise RegionError(f"{where}: region {open_name!r} is not closed before region {name!r} opens")
            if name in found:
                raise RegionError(f"{where}: region {name!r} appears twice")
            open_name, open_end = name, m.end()
        elif name != open_name:
            raise RegionError(f"{where}: <!-- /region:{name} --> closes no open region")
        else:
            found[name] = (open_end, m.start())
            open_name = None
    if open_name is not None:
        raise RegionError(f"{where}: region {open_name!r} is never closed (<!-- /region:{open_name} -->)")
    return found


def body(path: Path, name: str) -> str:
    """The committed text of region `name` in `path`."""
    start, end = _span(path, name)
    return path.read_text()[start:end]


def _span(path: Path, name: str) -> tuple[int, int]:
    if not path.is_file():
        raise RegionError(f"{path}: no such file, so no region {name!r}")
    found = spans(path.read_text(), str(path))
    if name not in found:
        raise RegionError(f"{path}: no region {name!r} (<!-- region:{name} --> ... <!-- /region:{name} -->)")
    return found[name]


def replace(path: Path, name: str, text: str) -> None:
    """Replace region `name`'s body in `path` by `text`, atomically (a reader sees the old file or the new)."""
    start, end = _span(path, name)
    old = path.read_text()
    new = old[:start] + "\n" + text.strip("\n") + "\n" + old[end:]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _commit(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown commit"
    # Only tracked files count: the region's own file is about to change and outputs are untracked.
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    mem = Path("/proc/meminfo")
    gib = f", {int(mem.read_text().split()[1]) // 2**20} GiB RAM" if mem.exists() else ""
    return f"{platform.machine()}, {os.cpu_count()} cores{gib}, Python {platform.python_version()}"


def provenance(command: str, root: Path, when: datetime | None = None) -> str:
    """The line above a region's table: the command, date, commit and machine that produced it."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return f"<sub>Written by `{command}` on {stamp} at {_commit(root)} ({machine()}).</sub>"


def write(root: Path, name: str, rendered: str, command: str, stamp: str | None = None) -> Path:
    """Rewrite region `name` of its catalog file under `root` with `rendered`, under a provenance line (`stamp`:
    one already made, so that the regions one run writes name the same commit, not the first one's edit)."""
    if name not in CATALOG:
        raise RegionError(f"no region named {name!r} (known: {', '.join(sorted(CATALOG))})")
    path = root / CATALOG[name].path
    replace(path, name, (stamp or provenance(command, root)) + "\n\n" + rendered.strip("\n"))
    return path


def cell(text: object) -> str:
    """Text inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table, rows: Sequence[Sequence[object]], more: Sequence[str] = ()) -> str:
    """A Markdown table whose header is `table.columns`, then `more` (the data's own columns) where it has them."""
    if more and not table.more_columns:
        raise ValueError(f"columns {list(more)} after a table of fixed columns {list(table.columns)}")
    return markdown_rows([*table.columns, *more], rows)


def markdown_rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"a row of {len(r)} cells under {len(header)} columns: {list(r)[:3]}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ---- reading tables back (the shape test) ----


def _split(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table in `text`: (header, rows)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and re.fullmatch(r"\s*\|(\s*:?-+:?\s*\|)+\s*", lines[i + 1]):
            header, rows, i = _split(lines[i]), [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_split(lines[i]))
                i += 1
            out.append((header, rows))
        else:
            i += 1
    return out


def names(cell_text: str) -> list[str]:
    """The names a table cell holds: `a` / `b`, **a**, a (b) -> ['a', 'b'], ['a'], ['a']."""
    plain = re.sub(r"[*`]", "", cell_text)
    return [part.strip() for part in plain.split(" / ") if part.strip()]


def mismatches(shape: Sequence[Table], text: str) -> list[str]:
    """How the tables in `text` differ from `shape`: a column renamed, added or dropped, a row or value the
    vocabulary lacks, a vocabulary name with no row. Empty when they agree."""
    found = tables(text)
    problems = []
    if len(found) != len(shape):
        problems.append(f"{len(found)} tables, the renderer writes {len(shape)}")
    for k, (want, (header, rows)) in enumerate(zip(shape, found, strict=False)):
        fixed = header[: len(want.columns)] if want.more_columns else header
        if tuple(fixed) != want.columns:
            problems.append(f"table {k + 1}: columns {fixed}, the renderer writes {list(want.columns)}")
            continue
        if want.rows:
            vocabulary = [n for row in want.rows for n in names(row)]
            seen = [n for r in rows for n in names(r[0])]
            problems += [f"table {k + 1}: row {n!r} is not one of {vocabulary}" for n in seen if n not in vocabulary]
            if want.all_rows:
                problems += [f"table {k + 1}: no row for {n!r}" for n in vocabulary if n not in seen]
        for column, vocabulary in want.values.items():
            j = header.index(column)
            for r in rows:
                problems += [
                    f"table {k + 1}: {column} {v!r} is not one of {list(vocabulary)}"
                    for v in names(r[j])
                    if v not in vocabulary
                ]
    return problems
