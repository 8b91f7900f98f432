"""Historical replay: which cells fail on which transformers release, and with which class.

One row per (IUT, mode, save options), one column per release; each entry summarises the row's
cells over all fixtures: ✓ when all pass, otherwise the failing count with its classes or errors.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.plan.cells import options_label
from offload_conformance.harness.results import CellResult, RunResult


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _summary(cells: list[CellResult]) -> str:
    unsupported = sum(c.outcome is Outcome.UNSUPPORTED for c in cells)
    skipped = f" ({unsupported} unsupported)" if unsupported else ""
    runnable = [c for c in cells if c.outcome is not Outcome.UNSUPPORTED]
    bad = [c for c in runnable if c.outcome is not Outcome.PASS]
    if not bad:
        return f"✓ {len(runnable)}{skipped}"
    kinds: Counter[str] = Counter()
    for c in bad:
        if c.outcome is Outcome.FAIL:
            kinds.update(c.classes)
        else:
            kinds[_short(c)] += 1
    what = "; ".join(f"{k} ({n})" if n > 1 else k for k, n in kinds.most_common())
    return f"✗ {len(bad)}/{len(runnable)}: {what}{skipped}"


def _short(c: CellResult) -> str:
    """'save: NotImplementedError'; 'baseline save: ValueError' when the in-memory save itself failed."""
    if c.baseline_failure is not None:
        return f"baseline {c.baseline_failure.stage}: {c.baseline_failure.type}"
    if c.failure is not None:
        return f"{c.failure.stage}: {c.failure.type}"
    return c.outcome


def table(merged: RunResult, impl: str | None = None) -> str:
    def version(c: CellResult) -> str:
        return c.transformers or describe_transformers(merged.environment)

    versions = sorted({version(c) for c in merged.cells}, key=_version_key)
    rows: dict[tuple[str, str, str], dict[str, list[CellResult]]] = defaultdict(lambda: defaultdict(list))
    for c in merged.cells:
        if impl is not None and c.impl != impl:
            continue
        options = options_label(c.save_options) or "default shards"
        rows[(c.impl, c.mode, options)][version(c)].append(c)
    head = ["impl", "mode", "save options", *(v.removeprefix("transformers ") for v in versions)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (impl, mode, options), by_version in sorted(rows.items()):
        cells = [_summary(by_version[v]) if v in by_version else "" for v in versions]
        lines.append(f"| {impl} | {mode} | {options} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
