"""drift.md and drift.json: what a run on the newest releases changed against the pinned ones' known failures.

`offload-conformance drift RESULTS.json... --pinned constraints/ci.txt --out DIR` (what `nox -s canary` runs). The
run was judged with `--xfails auto`, so its cells carry the pinned release's known failures: a failing cell they do
not list is **new**, a listed one that passes is **fixed**. Both are grouped by root cause: the outcome, classes
and exception type of a new cell; the listed reason of a fixed one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from offload_conformance.harness.report.grid import root_cause
from offload_conformance.harness.results import CellResult, RunResult

# Spelled as harness.environment records them.
PACKAGES = ("transformers", "accelerate", "safetensors", "huggingface_hub", "compressed-tensors", "torch")


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Group:
    cause: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Drift:
    versions: dict[str, dict[str, str]]  # "pinned" / "newest" -> package -> version
    known_failures_of: str | None  # the release whose known failures judged the run
    new: tuple[Group, ...]
    fixed: tuple[Group, ...]

    @property
    def ok(self) -> bool:
        return not self.new


def pins(constraints: Path) -> dict[str, str]:
    """package (as PACKAGES spells it) -> pinned version, from a pip constraints file (`name==version` lines)."""
    spelled = {_canonical(p): p for p in PACKAGES}
    out = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and _canonical(name) in spelled:
            out[spelled[_canonical(name)]] = version.strip()
    return out


def _grouped(cells: list[CellResult], key) -> tuple[Group, ...]:  # type: ignore[no-untyped-def]
    groups: dict[str, list[str]] = defaultdict(list)
    for c in cells:
        groups[key(c)].append(c.cell_id)
    return tuple(Group(k, tuple(v)) for k, v in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def drift(results: list[RunResult], pinned: dict[str, str]) -> Drift:
    cells = [c for r in results for c in r.cells]
    env = results[0].environment if results else {}
    newest = {p: str(env.get(p.replace("-", "_"), env.get(p, "?"))) for p in PACKAGES}
    of = next((r.drift_from for r in results if r.drift_from), None) or env.get("transformers")
    return Drift(
        versions={
            "pinned": {p: pinned.get(p, pinned.get(p.replace("-", "_"), "?")) for p in PACKAGES},
            "newest": newest,
        },
        known_failures_of=of,
        new=_grouped([c for c in cells if c.counts_as_failure], root_cause),
        fixed=_grouped([c for c in cells if c.stale_xfail], lambda c: c.xfail or ""),
    )


def markdown(d: Drift) -> str:
    rows = [f"| {p} | {d.versions['pinned'][p]} | {d.versions['newest'][p]} |" for p in PACKAGES]
    lines = [
        "## offload-conformance canary: drift against the pinned releases",
        "",
        "| package | pinned | newest |",
        "|---|---|---|",
        *rows,
        "",
        f"Judged by the known failures of transformers {d.known_failures_of}: "
        f"**{sum(len(g.cells) for g in d.new)} new** failures, {sum(len(g.cells) for g in d.fixed)} fixed.",
        "",
    ]
    for title, groups in (("New failures, by root cause", d.new), ("Fixed, by the reason they were listed", d.fixed)):
        if groups:
            lines += [f"### {title}", ""]
            for g in groups:
                lines.append(f"- **{g.cause}** ({len(g.cells)}): " + ", ".join(f"`{c}`" for c in g.cells[:10]))
                if len(g.cells) > 10:
                    lines[-1] += f" and {len(g.cells) - 10} more"
            lines.append("")
    return "\n".join(lines)


def write(d: Drift, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(asdict(d) | {"ok": d.ok}, indent=2) + "\n")
    (out / "drift.md").write_text(markdown(d) + "\n")
