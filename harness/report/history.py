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
from offload_conformance.harness.report.regions import Table, markdown_table
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


# The releases follow, one column each.
HISTORY_TABLE = Table(("impl", "mode", "save options"), more_columns=True)


def region_shape() -> tuple[Table, ...]:
    return (HISTORY_TABLE,)


def region(merged: RunResult) -> str:
    """docs/findings.md's region: upstream's row of every mode and save option, release by release."""
    fixtures = sorted({c.fixture for c in merged.cells})
    head = (
        f"{len(fixtures)} fixtures ({', '.join(fixtures)}), upstream's save. Each entry: ✓ and the cell count when"
        " every runnable cell passes, otherwise failing/runnable and the classes or the exception (`save:` is the IUT's"
        " save, `baseline save:` the in-memory save itself)."
    )
    return head + "\n\n" + table(merged, impl="upstream")


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
    body = [
        [impl, mode, options, *(_summary(by_version[v]) if v in by_version else "" for v in versions)]
        for (impl, mode, options), by_version in sorted(rows.items())
    ]
    return markdown_table(HISTORY_TABLE, body, more=[v.removeprefix("transformers ") for v in versions])
