"""Base vs candidate: did this transformers change break a cell that passed before?"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.merge import check_fixtures
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.results import RunResult


@dataclass(frozen=True)
class Change:
    cell_id: str
    base: str  # outcome and classes, e.g. "fail shard-layout"
    candidate: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    base: str
    candidate: str
    regressions: tuple[Change, ...]
    fixes: tuple[Change, ...]
    unchanged_failures: tuple[Change, ...]
    only_in_base: tuple[str, ...]
    only_in_candidate: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_json(self) -> dict[str, object]:
        return {"verdict": "pass" if self.passed else "fail", **asdict(self)}


def gate(base: RunResult, candidate: RunResult) -> Verdict:
    check_fixtures([("base", base), ("candidate", candidate)])
    b, c = base.key(), candidate.key()
    regressions, fixes, unchanged = [], [], []
    for cell_id in sorted(b.keys() & c.keys()):
        was, now = b[cell_id], c[cell_id]
        passed, passes = was.outcome is Outcome.PASS, now.outcome is Outcome.PASS
        change = Change(cell_id, was.state, now.state, was.detail if passes else now.detail)
        if passed and not passes:
            regressions.append(change)
        elif passes and not passed:
            fixes.append(change)
        elif not passes:
            unchanged.append(change)
    return Verdict(
        describe_transformers(base.environment),
        describe_transformers(candidate.environment),
        tuple(regressions),
        tuple(fixes),
        tuple(unchanged),
        tuple(sorted(b.keys() - c.keys())),
        tuple(sorted(c.keys() - b.keys())),
    )


def _table(changes: tuple[Change, ...]) -> list[str]:
    rows = [f"| `{c.cell_id}` | {c.base} | {c.candidate} | {c.detail[:200].replace('|', '/')} |" for c in changes]
    return ["| cell | base | candidate | detail |", "|---|---|---|---|", *rows]


def markdown(v: Verdict) -> str:
    """As a PR comment shows it: regressions first, then fixes; unchanged failures folded."""
    head = "PASS: no regressions" if v.passed else f"FAIL: {len(v.regressions)} regression(s)"
    lines = [f"## offload-conformance gate: {head}", "", f"- base: {v.base}", f"- candidate: {v.candidate}", ""]
    for title, changes in (
        ("Regressions (pass on base, not on candidate)", v.regressions),
        ("Fixes (fail on base, pass on candidate)", v.fixes),
    ):
        lines.append(f"### {title}: {len(changes)}")
        lines += ["", *_table(changes), ""] if changes else [""]
    if v.unchanged_failures:
        n = len(v.unchanged_failures)
        lines += [f"<details><summary>Unchanged failures: {n}</summary>", "", *_table(v.unchanged_failures), ""]
        lines += ["</details>", ""]
    for title, ids in (("Only in base", v.only_in_base), ("Only in candidate", v.only_in_candidate)):
        if ids:
            lines.append(f"{title}: {', '.join(f'`{i}`' for i in ids)}")
    return "\n".join(lines) + "\n"


def write(v: Verdict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.json").write_text(json.dumps(v.to_json(), indent=2) + "\n")
    (out / "gate.md").write_text(markdown(v))
