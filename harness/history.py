"""Historical replay: which cells fail on which transformers release, and with which class.

One row per (IUT, mode, save options), one column per release; each entry summarises the row's
cells over all fixtures: ✓ when all pass, otherwise the failing count with its classes or errors.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from harness.results import CellResult, RunResult


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _summary(cells: list[CellResult]) -> str:
    unsupported = sum(c.outcome == "unsupported" for c in cells)
    skipped = f" ({unsupported} unsupported)" if unsupported else ""
    runnable = [c for c in cells if c.outcome != "unsupported"]
    bad = [c for c in runnable if c.outcome != "pass"]
    if not bad:
        return f"✓ {len(runnable)}{skipped}"
    kinds: Counter[str] = Counter()
    for c in bad:
        if c.outcome == "fail":
            kinds.update(c.classes)
        else:
            kinds[f"{_short(c.detail)}"] += 1
    what = "; ".join(f"{k} ({n})" if n > 1 else k for k, n in kinds.most_common())
    return f"✗ {len(bad)}/{len(runnable)}: {what}{skipped}"


def _short(detail: str) -> str:
    # "save raised NotImplementedError: Cannot copy ..." -> "save: NotImplementedError";
    # a failed baseline is the in-memory save's own error.
    match = re.search(r"(baseline failed: )?(\w+) raised (\w+)", detail)
    if not match:
        return detail.split(":")[0][:40]
    return f"{'baseline ' if match.group(1) else ''}{match.group(2)}: {match.group(3)}"


def table(merged: RunResult, impl: str | None = None) -> str:
    versions = sorted({c.transformers for c in merged.cells}, key=_version_key)
    rows: dict[tuple[str, str, str], dict[str, list[CellResult]]] = defaultdict(lambda: defaultdict(list))
    for c in merged.cells:
        if impl is not None and c.impl != impl:
            continue
        options = ",".join(f"{k}={v}" for k, v in sorted(c.save_options.items())) or "default shards"
        rows[(c.impl, c.mode, options)][c.transformers].append(c)
    head = ["impl", "mode", "save options", *(v.removeprefix("transformers ") for v in versions)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (impl, mode, options), by_version in sorted(rows.items()):
        cells = [_summary(by_version[v]) if v in by_version else "" for v in versions]
        lines.append(f"| {impl} | {mode} | {options} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
