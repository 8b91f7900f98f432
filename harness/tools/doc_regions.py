"""`offload-conformance docs TOOL OUTPUT...`: rewrite TOOL's region of README.md or docs/ from what it just wrote.

The measuring sessions (`nox -s bench`, `sweep`, `ledger`, `llmcompressor`, `mutants`, `matrix`, `fuzz -- --damage`)
call it after their run, so no measured table in the docs is copied by hand. Each tool's renderer sits beside its
other reports; this module only reads the tool's output document and hands the renderer's text to
harness.report.regions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from offload_conformance.harness.merge import merge
from offload_conformance.harness.report.regions import RegionError, provenance, write
from offload_conformance.harness.results import RunResult

if TYPE_CHECKING:
    from offload_conformance.harness.tools.mutants.model import Analysis


def _one(outputs: list[Path], name: str) -> Path:
    """The document `name` in the one output directory given (or the document itself)."""
    if len(outputs) != 1:
        raise RegionError(f"one output directory, not {len(outputs)}")
    path = outputs[0] / name if outputs[0].is_dir() else outputs[0]
    if not path.is_file():
        raise RegionError(f"{path}: no such file (did the run finish?)")
    return path


def _results(outputs: list[Path]) -> RunResult:
    """One run's results.json, or the merge of several (a split run's parts, or one document per release)."""
    paths = [p / "results.json" if p.is_dir() else p for p in outputs]
    if not paths or any(not p.is_file() for p in paths):
        raise RegionError(f"no results.json in {', '.join(map(str, outputs)) or 'no output given'}")
    documents = [(str(p), RunResult.read(p)) for p in paths]
    return documents[0][1] if len(documents) == 1 else merge(documents)


def _bench(outputs: list[Path]) -> str:
    from offload_conformance.harness.tools import bench

    return bench.region(json.loads(_one(outputs, "bench.json").read_text()))


def _ledger(outputs: list[Path]) -> str:
    from offload_conformance.harness.ledger import report

    return report.region(json.loads(_one(outputs, "ledger.json").read_text()))


def _analysis(outputs: list[Path]) -> Analysis:
    from offload_conformance.harness.tools.mutants.model import Analysis

    return Analysis.read(_one(outputs, "mutants.json"))


def _llmcompressor(outputs: list[Path]) -> str:
    from offload_conformance.harness.tools.llmcompressor import report

    return report.region(_results(outputs))


def _damage(outputs: list[Path]) -> str:
    from offload_conformance.harness.tools.damage import run

    return run.region(json.loads(_one(outputs, "damage.json").read_text()))


def _sweep(outputs: list[Path]) -> str:
    from offload_conformance.harness.report import causes

    return causes.region(_results(outputs))


def _matrix(outputs: list[Path]) -> str:
    """matrix-out/ holds one directory per release: every results.json found under the outputs, merged."""
    from offload_conformance.harness.report import history

    found = [p for o in outputs for p in (sorted(o.glob("*/results.json")) if o.is_dir() else [o])]
    return history.region(_results(found))


RENDER: dict[str, Callable[[list[Path]], str]] = {
    "bench": _bench,
    "ledger": _ledger,
    "llmcompressor": _llmcompressor,
    "damage": _damage,
    "sweep": _sweep,
    "matrix": _matrix,
}


def mutants_report(analysis: Analysis, stamp: str, root: Path) -> Path:
    """A full analysis's whole mutants.md, kept as docs/results/mutants-transformers-<version>.md."""
    from offload_conformance.harness.tools.mutants import report

    path = root / "docs" / "results" / f"mutants-transformers-{analysis.environment.get('transformers', 'unknown')}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(stamp + "\n\n" + report.markdown(analysis))
    return path


def update(tool: str, outputs: list[Path], command: str, root: Path) -> list[Path]:
    """Render `tool`'s region from `outputs` and write it under `root`; the files written."""
    if tool not in RENDER and tool != "mutants":  # mutants writes three documents from one read (below)
        raise RegionError(f"no region for {tool!r} (known: {', '.join([*RENDER, 'mutants'])})")
    stamp = provenance(command, root)  # before the first file changes: every file it writes names the same commit
    if tool != "mutants":
        return [write(root, tool, RENDER[tool](outputs), command, stamp)]
    from offload_conformance.harness.tools.mutants import report

    analysis = _analysis(outputs)  # read once: a full analysis's document is megabytes
    return [
        write(root, "mutants", report.region(analysis), command, stamp),
        write(root, "mutants-scores", report.scores_region(analysis), command, stamp),
        mutants_report(analysis, stamp, root),
    ]
