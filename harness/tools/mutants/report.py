"""mutants.md and mutants.html: a mutation analysis for a reviewer, every number drawn from the Analysis.

Both lead with the side-by-side table: one row per target and a Total row; the mutants of each status;
the harness score and, on the same mutants, the score of each alternative oracle. Then where the numbers
come from (environment, timing), what could not be analysed (missing targets, stale equivalents), and
the lists a reviewer works through: survivors, unreached lines by reason, crashes, timeouts, equivalents.
Scores are only ever computed by `Analysis.score` and `Analysis.oracle_score` (model.py): a target's row
is the Analysis restricted to that target's mutants (`for_target`).
"""

from __future__ import annotations

import dataclasses
import html as _html
import re
from collections.abc import Callable
from pathlib import Path

from offload_conformance.harness.outcomes import Oracle
from offload_conformance.harness.report.html import STYLE
from offload_conformance.harness.report.regions import Table, markdown_table
from offload_conformance.harness.tools.mutants.model import (
    Analysis,
    MutantResult,
    Status,
    Timing,
    UnreachedLine,
)

# The table's status columns, in the order a reader weighs them (Status's own order differs).
STATUS_COLUMNS = (
    Status.KILLED,
    Status.SURVIVED,
    Status.UNREACHED,
    Status.EQUIVALENT,
    Status.KILLED_BY_CRASH,
    Status.TIMEOUT,
)
ORACLE_LABELS = {
    Oracle.LOGITS: "logits allclose",
    Oracle.STATE_DICT: "state dict torch.equal",
    Oracle.NAMES: "tensor names",
}
HEADER = ("target", "mutants", *(s.value for s in STATUS_COLUMNS), "harness score", *ORACLE_LABELS.values())
TOTAL = "Total"
SCORE_NOTE = (
    "score = killed / (killed + survived): among the mutants a cell reaches and the harness judged, the share"
    " it detected; each oracle column is the same ratio for that oracle on the same mutants. Unreached,"
    " equivalent, killed-by-crash and timeout mutants are not scored."
)
COLOR = {
    Status.KILLED: "#c8f0c8",
    Status.SURVIVED: "#f5b5b5",
    Status.UNREACHED: "#dddddd",
    Status.EQUIVALENT: "#e6d5f5",
    Status.KILLED_BY_CRASH: "#f3d27a",
    Status.TIMEOUT: "#f8e0b0",
}
NONE = "—"
Columns = Callable[[MutantResult], list[str]]  # a mutant's cells in a list table, after its id


# ---- numbers shared by both documents ----


def for_target(a: Analysis, target: str) -> Analysis:
    """The analysis restricted to one target's mutants and unreached lines: its counts and scores are that
    target's, computed by the same Analysis methods as the total."""
    return dataclasses.replace(
        a,
        mutants=tuple(m for m in a.mutants if m.target == target),
        unreached=tuple(u for u in a.unreached if u.target == target),
    )


def _target_names(a: Analysis) -> list[str]:
    """The analysed targets, then any target a mutant names that the targets list lacks (none, normally)."""
    return list(dict.fromkeys([*(t.name for t in a.targets), *(m.target for m in a.mutants)]))


def score_text(score: float | None, judged: int) -> str:
    """'71.4% (5/7)': the ratio and the counts it comes from; a dash when no mutant was judged."""
    if score is None:
        return NONE
    return f"{score:.1%} ({round(score * judged)}/{judged})"


def _row(name: str, a: Analysis) -> list[str]:
    counts = a.counts()
    judged = counts[Status.KILLED.value] + counts[Status.SURVIVED.value]
    return [
        name,
        str(len(a.mutants)),
        *(str(counts[s.value]) for s in STATUS_COLUMNS),
        score_text(a.score, judged),
        *(score_text(a.oracle_score(o), judged) for o in ORACLE_LABELS),
    ]


def table(a: Analysis) -> list[list[str]]:
    """The side-by-side table's rows (cells as text): one per target, then the Total row."""
    return [*(_row(t, for_target(a, t)) for t in _target_names(a)), _row(TOTAL, a)]


def import_share(t: Timing) -> float | None:
    """Of the mutant workers' time, the share spent importing the overlay (or patching a mutant in: hot.py)."""
    busy = t.import_seconds + t.cell_seconds
    return t.import_seconds / busy if busy else None


def timing_line(t: Timing) -> str:
    share = import_share(t)
    busy = t.import_seconds + t.cell_seconds
    share_text = NONE if share is None else f"{share:.0%}"
    reach = f"reach run {'from the cache ' if t.reach_cached else ''}{t.reach_seconds:.1f} s"
    return (
        f"{t.total_seconds:.1f} s total, {reach}, import share {share_text}"
        f" ({t.import_seconds:.1f} s of {busy:.1f} s in mutant workers),"
        f" {t.mutants_per_minute:.1f} mutants/minute ({t.mutants_run} mutants run, {t.patched} of them patched in)"
    )


def environment_line(a: Analysis) -> str:
    return " · ".join(f"{k} {v}" for k, v in sorted(a.environment.items())) or NONE


def scope_line(a: Analysis) -> str:
    """What this document covers: the cells, the sample and the part of a split run."""
    text = f"{len(a.mutants)} mutants of {len(a.targets)} targets, run on {len(a.cells)} cells"
    if a.sample is not None:
        text += f"; a sample of {a.sample}" + (f" (seed {a.seed})" if a.seed is not None else "")
    if a.shard is not None:
        text += (
            f"; part {a.shard.index} of {a.shard.count} of a split run ({len(a.shard.planned)} mutants planned:"
            " `offload-conformance merge` joins the parts)"
        )
    return text


def by_status(a: Analysis, status: Status) -> list[MutantResult]:
    return [m for m in a.mutants if m.status is status]


def unreached_by_reason(a: Analysis) -> list[tuple[str, list[UnreachedLine]]]:
    """Reasons with their lines, the reason leaving the most mutants unreached first."""
    groups: dict[str, list[UnreachedLine]] = {}
    for u in a.unreached:
        groups.setdefault(u.reason, []).append(u)
    return sorted(groups.items(), key=lambda kv: -sum(u.mutants for u in kv[1]))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def lines_and_mutants(lines: list[UnreachedLine] | tuple[UnreachedLine, ...]) -> str:
    """'3 lines, 4 mutants'"""
    return f"{plural(len(lines), 'line')}, {plural(sum(u.mutants for u in lines), 'mutant')}"


def killed_by(m: MutantResult) -> list[str]:
    """The alternative oracles that killed the mutant, by their labels."""
    return [label for o, label in ORACLE_LABELS.items() if m.oracles.get(o.value, False)]


# ---- docs/mutants.md's region ----

HARNESS_LABEL = "this harness"
SCORES_TABLE = Table(
    ("scored by", "mutants judged", "killed", "score"), rows=(HARNESS_LABEL, *ORACLE_LABELS.values()), all_rows=True
)


def region_shape() -> tuple[Table, ...]:
    return (SCORES_TABLE,)


PACKAGES_SHOWN = ("transformers", "accelerate", "huggingface_hub")  # the versions README's scope line names


def _scores(a: Analysis) -> str:
    """The harness's score beside each oracle's on the same mutants: the table both regions lead with."""
    counts = a.counts()
    judged = counts[Status.KILLED.value] + counts[Status.SURVIVED.value]
    kills = [(f"**{HARNESS_LABEL}**", a.score)] + [(label, a.oracle_score(o)) for o, label in ORACLE_LABELS.items()]
    rows = [
        [label, judged, NONE if score is None else round(score * judged), NONE if score is None else f"{score:.1%}"]
        for label, score in kills
    ]
    return markdown_table(SCORES_TABLE, rows)


def scores_region(a: Analysis) -> str:
    """README's region: the scores table of the last full analysis, the rest in docs/mutants.md."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(a.environment.items()) if k in PACKAGES_SHOWN)
    return "\n".join([scope_line(a) + (f" ({versions})." if versions else "."), "", _scores(a)])


def region(a: Analysis) -> str:
    """The harness's score beside each oracle's on the same mutants, what was not scored, and by package."""
    counts = a.counts()
    packages: dict[str, list[MutantResult]] = {}
    for m in a.mutants:
        packages.setdefault(m.target.split(".")[0], []).append(m)
    parts = []
    for name in sorted(packages):
        part = dataclasses.replace(a, mutants=tuple(packages[name]))
        scored = sum(m.status in (Status.KILLED, Status.SURVIVED) for m in part.mutants)
        parts.append(f"{name} {score_text(part.score, scored)}")
    by_package = "; ".join(parts)
    lines = [
        scope_line(a) + ".",
        "",
        _scores(a),
        SCORE_NOTE,
        "",
        f"Not scored: {counts[Status.UNREACHED.value]} unreached ({plural(len(a.unreached), 'line')}),"
        f" {counts[Status.KILLED_BY_CRASH.value]} killed by crash, {counts[Status.EQUIVALENT.value]} equivalent,"
        f" {plural(counts[Status.TIMEOUT.value], 'timeout')}. By package: {by_package}.",
    ]
    if a.timing:
        lines += ["", f"Timing: {timing_line(a.timing)}."]
    return "\n".join(lines) + "\n"


# ---- the terminal ----


def summary(a: Analysis) -> str:
    """What `offload-conformance mutants` prints: the side-by-side table as aligned text, then one line each
    for the lists mutants.md details and the timing."""
    rows = [list(HEADER), *table(a)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    text = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    counts = a.counts()
    lists = (
        f"{plural(counts[Status.SURVIVED.value], 'survivor')}, {plural(len(a.unreached), 'unreached line')}"
        f" ({plural(sum(u.mutants for u in a.unreached), 'mutant')}), {counts[Status.KILLED_BY_CRASH.value]} killed"
        f" by crash, {plural(counts[Status.TIMEOUT.value], 'timeout')}"
    )
    if a.missing:
        lists += f", {plural(len(a.missing), 'missing target')}"
    if a.stale_equivalents:
        lists += f", {plural(len(a.stale_equivalents), 'stale equivalent')}"
    if a.stale_killers:
        lists += f", {plural(len(a.stale_killers), 'stale killer')}"
    text += ["", scope_line(a).replace("`", "") + ".", lists + " (mutants.md lists them)."]
    if a.timing:
        text.append(f"Timing: {timing_line(a.timing)}.")
    return "\n".join(line.rstrip() for line in text)


# The files whose entries a run can find stale (analysis.stale), by section title: what the section says of them.
_STALE_TEXT = {
    "Stale equivalents": "Listed in equivalent.txt, but no mutant of this run has the id",
    "Stale killers": "Listed in killers.txt, but no mutant of this run has the id (rewrite it from this run)",
}


def _stale_lists(a: Analysis) -> list[tuple[str, tuple[str, ...]]]:
    """The non-empty stale lists, each under its section title."""
    lists = [("Stale equivalents", a.stale_equivalents), ("Stale killers", a.stale_killers)]
    return [(title, ids) for title, ids in lists if ids]


# ---- mutants.md ----


def _cell(text: object) -> str:
    """Text inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """A code span holding any text (backticks in it too), inside a table cell."""
    text = text.replace("\n", " ").strip()
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _where(m: MutantResult) -> str:
    return f"{m.file}:{m.line}"


def _md_section(title: str, items: list[MutantResult], header: list[str], row: Columns) -> list[str]:
    lines = [f"## {title} ({len(items)})", ""]
    return lines + (_md_table(header, [row(m) for m in items]) if items else ["None.", ""])


def markdown(a: Analysis) -> str:
    lines = ["# Mutation analysis", ""]
    rows = table(a)
    lines += _md_table(HEADER, [[f"**{c}**" for c in rows[-1]]])  # the total first: what a maintainer asks
    lines += [SCORE_NOTE, "", scope_line(a) + ".", ""]
    lines += ["## Per target", ""]
    lines += _md_table(HEADER, [[_code(r[0]), *r[1:]] for r in rows[:-1] if r[1] != "0"])

    lines += ["## Environment", "", environment_line(a), ""]
    if a.cells:
        lines += [f"<details><summary>The {len(a.cells)} cells</summary>", ""]
        lines += [*(f"- {_code(c)}" for c in a.cells), "", "</details>", ""]
    lines += ["## Timing", "", timing_line(a.timing) if a.timing else "Not recorded.", ""]

    if a.missing:
        lines += [f"## Missing targets ({len(a.missing)})", "", "Named, but not found in the installed packages:", ""]
        lines += [*(f"- {_code(t.name)}: {t.reason}" for t in a.missing), ""]
    for title, ids in _stale_lists(a):
        lines += [f"## {title} ({len(ids)})", "", f"{_STALE_TEXT[title]}:", "", *(f"- {_code(i)}" for i in ids), ""]

    lines += _md_section(
        "Survivors",
        by_status(a, Status.SURVIVED),
        ["mutant", "file:line", "description", "reached cells", "cells run"],
        lambda m: [_code(m.id), _code(_where(m)), _cell(m.description), str(m.reached), str(len(m.cells))],
    )

    lines += [f"## Unreached lines ({lines_and_mutants(a.unreached)})", ""]
    if not a.unreached:
        lines += ["None.", ""]
    for reason, group in unreached_by_reason(a):
        lines += [f"### {_cell(reason)} ({lines_and_mutants(group)})", ""]
        lines += _md_table(
            ["target", "file:line", "source", "mutants"],
            [[_code(u.target), _code(f"{u.file}:{u.line}"), _code(u.source), str(u.mutants)] for u in group],
        )

    lines += _md_section(
        "Killed by crash",
        by_status(a, Status.KILLED_BY_CRASH),
        ["mutant", "file:line", "description", "what broke"],
        lambda m: [_code(m.id), _code(_where(m)), _cell(m.description), _cell(m.reason)],
    )
    lines += _md_section(
        "Timeout",
        by_status(a, Status.TIMEOUT),
        ["mutant", "file:line", "description", "cells run", "reason"],
        lambda m: [_code(m.id), _code(_where(m)), _cell(m.description), str(len(m.cells)), _cell(m.reason)],
    )
    lines += _md_section(
        "Equivalent",
        by_status(a, Status.EQUIVALENT),
        ["mutant", "file:line", "description", "reason"],
        lambda m: [_code(m.id), _code(_where(m)), _cell(m.description), _cell(m.reason)],
    )
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- mutants.html ----

EXTRA_STYLE = """
.status{padding:1px 4px;border-radius:3px}details.cell p{margin:4px 0}
"""

# Filters hide the rows and mutant entries whose data-* attributes do not match; a mutant's link opens
# its <details> below.
SCRIPT = """
function applyFilters(){
  const want = {};
  for (const sel of document.querySelectorAll('#filters select')) want[sel.name] = sel.value;
  for (const el of document.querySelectorAll('[data-mutant]')) {
    const ok = Object.entries(want).every(([key, value]) => !value || el.dataset[key] === value);
    el.classList.toggle('hidden', !ok);
  }
}
function openMutant(id){
  const target = document.getElementById(id);
  if (target) { target.open = true; target.scrollIntoView(); }
}
document.addEventListener('DOMContentLoaded', () => {
  for (const sel of document.querySelectorAll('#filters select')) sel.addEventListener('change', applyFilters);
  for (const a of document.querySelectorAll('a.mutant')) a.addEventListener('click', () => openMutant(a.hash.slice(1)));
  if (location.hash) openMutant(location.hash.slice(1));
});
"""


def _e(text: object) -> str:
    return _html.escape(str(text), quote=True)


def _anchor(mutant_id: str) -> str:
    return "mutant-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in mutant_id)


def _data(status: str, target: str) -> str:
    return f"data-mutant data-status='{_e(status)}' data-target='{_e(target)}'"


def _status(s: Status) -> str:
    return f"<span class='status' style='background:{COLOR[s]}'>{_e(s.value)}</span>"


def _link(m: MutantResult) -> str:
    return f"<a class='mutant' href='#{_anchor(m.id)}'><code>{_e(m.id)}</code></a>"


def _html_table(header: list[str] | tuple[str, ...], rows: list[tuple[str, list[str]]], table_id: str = "") -> str:
    """rows: (attributes of the <tr>, cells already escaped)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        f"<tr{' ' + attrs if attrs else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for attrs, cells in rows
    )
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _summary(a: Analysis) -> str:
    """The total first, then the targets that have mutants in this run (as in mutants.md)."""
    rows = table(a)
    total = _html_table(HEADER, [("", [f"<b>{_e(c)}</b>" for c in rows[-1]])], "summary")
    body = [("", [f"<code>{_e(r[0])}</code>", *map(_e, r[1:])]) for r in rows[:-1] if r[1] != "0"]
    return total + f"<p>{_e(SCORE_NOTE)}</p><h2>Per target</h2>" + _html_table(HEADER, body, "per-target")


def _select(name: str, values: list[str]) -> str:
    options = "".join(f"<option value='{_e(v)}'>{_e(v)}</option>" for v in values)
    return f"<label>{name} <select name='{name}'><option value=''>all</option>{options}</select></label>"


def _filters(a: Analysis) -> str:
    statuses = [s.value for s in STATUS_COLUMNS if any(m.status is s for m in a.mutants)]
    return f"<p id='filters'>{_select('status', statuses)}{_select('target', _target_names(a))}</p>"


def _mutant_rows(a: Analysis, status: Status, columns: Columns) -> list[tuple[str, list[str]]]:
    return [(_data(m.status.value, m.target), [_link(m), *columns(m)]) for m in by_status(a, status)]


def _html_section(title: str, a: Analysis, status: Status, header: list[str], columns: Columns, table_id: str) -> str:
    rows = _mutant_rows(a, status, columns)
    body = _html_table(["mutant", *header], rows, table_id) if rows else "<p>None.</p>"
    return f"<h2>{_e(title)} ({len(rows)})</h2>{body}"


def _unreached(a: Analysis) -> str:
    parts = [f"<h2>Unreached lines ({lines_and_mutants(a.unreached)})</h2>"]
    if not a.unreached:
        parts.append("<p>None.</p>")
    for i, (reason, group) in enumerate(unreached_by_reason(a)):
        parts.append(f"<h3>{_e(reason)} ({lines_and_mutants(group)})</h3>")
        rows = [
            (
                _data(Status.UNREACHED.value, u.target),
                [
                    f"<code>{_e(u.target)}</code>",
                    f"<code>{_e(u.file)}:{u.line}</code>",
                    f"<code>{_e(u.source)}</code>",
                    str(u.mutants),
                ],
            )
            for u in group
        ]
        parts.append(_html_table(["target", "file:line", "source", "mutants"], rows, f"unreached-{i}"))
    return "".join(parts)


REASON_LABEL = {
    Status.EQUIVALENT: "why equivalent",
    Status.UNREACHED: "why unreached",
    Status.KILLED_BY_CRASH: "what broke",
    Status.TIMEOUT: "timeout",
}


def _details(m: MutantResult) -> str:
    judged = m.status in (Status.KILLED, Status.SURVIVED)
    oracles = (", ".join(killed_by(m)) or "none") if judged else "not judged (only killed and survived mutants are)"
    parts = [
        f"<details class='cell' id='{_anchor(m.id)}' {_data(m.status.value, m.target)}>",
        f"<summary><code>{_e(m.id)}</code> {_status(m.status)} {_e(m.description)}</summary>",
        f"<p><code>{_e(m.target)}</code> · <code>{_e(m.file)}:{m.line}</code> · operator {_e(m.operator)}"
        f" · reached by {m.reached} cells · {m.seconds:.1f} s</p>",
    ]
    if m.reason:
        parts.append(f"<p><b>{_e(REASON_LABEL.get(m.status, 'reason'))}:</b> {_e(m.reason)}</p>")
    parts.append(f"<p><b>oracles that killed it:</b> {_e(oracles)}</p>")
    if m.classes:
        parts.append(f"<p><b>classes:</b> {_e(', '.join(m.classes))}</p>")
    if m.changes:
        rows = [("", [f"<code>{_e(c.cell)}</code>", _e(c.before), _e(c.after)]) for c in m.changes]
        parts.append("<p><b>changed verdicts:</b></p>" + _html_table(["cell", "before", "after"], rows))
    if m.cells:
        cells = "".join(f"<li><code>{_e(c)}</code></li>" for c in m.cells)
        parts.append(f"<details><summary>cells run ({len(m.cells)})</summary><ul>{cells}</ul></details>")
    else:
        parts.append("<p>no cell run</p>")
    parts.append("</details>")
    return "".join(parts)


def html(a: Analysis) -> str:
    env = f"Environment: {_e(environment_line(a))}<br>"
    timing = f"Timing: {_e(timing_line(a.timing))}<br>" if a.timing else ""
    missing = "".join(f"<li><code>{_e(t.name)}</code>: {_e(t.reason)}</li>" for t in a.missing)
    stale = "".join(
        f"<h2>{title} ({len(ids)})</h2><p>{_e(_STALE_TEXT[title])}:</p><ul>"
        + "".join(f"<li><code>{_e(i)}</code></li>" for i in ids)
        + "</ul>"
        for title, ids in _stale_lists(a)
    )
    cells = "".join(f"<li><code>{_e(c)}</code></li>" for c in a.cells)
    return "".join(
        [
            "<!doctype html><html lang=en><meta charset=utf-8><title>offload-conformance mutants</title>",
            f"<style>{STYLE}{EXTRA_STYLE}</style>",
            f"<script>{SCRIPT}</script><h1>Mutation analysis</h1>",
            _summary(a),
            f"<p>{_e(scope_line(a).replace('`', ''))}.<br>{env}{timing}</p>",
            f"<details><summary>The {len(a.cells)} cells</summary><ul>{cells}</ul></details>" if a.cells else "",
            f"<h2>Missing targets ({len(a.missing)})</h2><ul>{missing}</ul>" if a.missing else "",
            stale,
            _filters(a),
            _html_section(
                "Survivors",
                a,
                Status.SURVIVED,
                ["file:line", "description", "reached cells", "cells run"],
                lambda m: [f"<code>{_e(_where(m))}</code>", _e(m.description), str(m.reached), str(len(m.cells))],
                "survivors",
            ),
            _unreached(a),
            _html_section(
                "Killed by crash",
                a,
                Status.KILLED_BY_CRASH,
                ["file:line", "description", "what broke"],
                lambda m: [f"<code>{_e(_where(m))}</code>", _e(m.description), _e(m.reason)],
                "crashes",
            ),
            _html_section(
                "Timeout",
                a,
                Status.TIMEOUT,
                ["file:line", "description", "cells run", "reason"],
                lambda m: [f"<code>{_e(_where(m))}</code>", _e(m.description), str(len(m.cells)), _e(m.reason)],
                "timeouts",
            ),
            _html_section(
                "Equivalent",
                a,
                Status.EQUIVALENT,
                ["file:line", "description", "reason"],
                lambda m: [f"<code>{_e(_where(m))}</code>", _e(m.description), _e(m.reason)],
                "equivalents",
            ),
            f"<h2>Every mutant ({len(a.mutants)})</h2>",
            "".join(_details(m) for m in a.mutants),
        ]
    )


def write(a: Analysis, out: Path) -> None:
    """mutants.json, mutants.md and mutants.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    a.write(out / "mutants.json")
    (out / "mutants.md").write_text(markdown(a))
    (out / "mutants.html").write_text(html(a))
