"""Join the parts of one `--shard K/N` mutation analysis (e.g. one per CI job) into the unsplit analysis.

`offload-conformance merge` calls `merge_documents` first: when the documents are mutants.json parts it
merges them and writes mutants.json, mutants.md and mutants.html; results.json documents are left to
harness/merge.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from offload_conformance.harness.tools.mutants import report
from offload_conformance.harness.tools.mutants.model import (
    SCHEMA,
    Analysis,
    MutantResult,
    Status,
    Timing,
    UnreachedLine,
)


class MergeError(ValueError):
    """The documents are not the parts of one split analysis; the message is one line naming the problem."""


def _same_run(parts: list[tuple[str, Analysis]]) -> None:
    """Every part ran the same analysis on the same environment; only its share of the mutants differs."""
    first_label, first = parts[0]
    for label, a in parts[1:]:
        if a.environment != first.environment:
            keys = sorted(a.environment.keys() | first.environment.keys())
            key = next(k for k in keys if a.environment.get(k) != first.environment.get(k))
            raise MergeError(
                f"{label} and {first_label} ran on different environments"
                f" ({key} {a.environment.get(key)} vs {first.environment.get(key)})"
            )
        if a.cells != first.cells:
            raise MergeError(f"{label} and {first_label} ran different cells ({len(a.cells)} vs {len(first.cells)})")
        if (a.targets, a.missing) != (first.targets, first.missing):
            raise MergeError(f"{label} and {first_label} analysed different targets")
        if (a.sample, a.seed) != (first.sample, first.seed):
            raise MergeError(f"{label} and {first_label} drew different samples (--sample/--seed)")


def _ordered_parts(parts: list[tuple[str, Analysis]]) -> tuple[list[tuple[str, Analysis]], tuple[str, ...]]:
    """The parts by shard index, and the planned mutant ids; refuses unsplit documents, overlaps, gaps and
    parts of different runs."""
    first_label, first = parts[0]
    for label, a in parts:
        if a.shard is None:
            raise MergeError(f"{label} is not a part of a split run (no --shard): nothing to merge it with")
    assert first.shard is not None
    count, planned = first.shard.count, first.shard.planned
    by_index: dict[int, str] = {}
    for label, a in parts:
        assert a.shard is not None
        if a.shard.count != count:
            raise MergeError(f"{label} is a part of {a.shard.count} but {first_label} of {count} (different --shard)")
        if a.shard.planned != planned:
            raise MergeError(f"{label} and {first_label} planned different mutants: parts of different runs")
        if not 1 <= a.shard.index <= count:
            raise MergeError(f"{label} is part {a.shard.index} of {count}: no such part")
        if a.shard.index in by_index:
            raise MergeError(f"part {a.shard.index}/{count} is in both {by_index[a.shard.index]} and {label}")
        by_index[a.shard.index] = label
    missing = sorted(set(range(1, count + 1)) - by_index.keys())
    if missing:
        raise MergeError(f"a gap: part(s) {', '.join(f'{k}/{count}' for k in missing)} missing")
    return sorted(parts, key=lambda p: p[1].shard.index if p[1].shard else 0), planned


def _mutants(parts: list[tuple[str, Analysis]], planned: tuple[str, ...]) -> tuple[MutantResult, ...]:
    """Every planned mutant once, in planned order."""
    order = {mutant_id: i for i, mutant_id in enumerate(planned)}
    seen: dict[str, str] = {}
    mutants: list[MutantResult] = []
    for label, a in parts:
        for m in a.mutants:
            if m.id in seen:
                raise MergeError(f"mutant {m.id} is in both {seen[m.id]} and {label}")
            if m.id not in order:
                raise MergeError(f"mutant {m.id} of {label} is not in the planned list")
            seen[m.id] = label
            mutants.append(m)
    if len(mutants) != len(planned):
        absent = next(i for i in planned if i not in seen)
        raise MergeError(f"the parts hold {len(mutants)} of {len(planned)} planned mutants ({absent} is in none)")
    return tuple(sorted(mutants, key=lambda m: order[m.id]))


def _unreached(parts: list[tuple[str, Analysis]], mutants: tuple[MutantResult, ...]) -> tuple[UnreachedLine, ...]:
    """Each part reports the unreached lines of its own mutants: one line per (target, file, line), its
    mutants summed, in the order of the line's first unreached mutant in the mutants list (as an unsplit run
    lists them)."""
    lines: dict[tuple[str, str, int], UnreachedLine] = {}
    for _, a in parts:
        for u in a.unreached:
            key = (u.target, u.file, u.line)
            lines[key] = dataclasses.replace(lines[key], mutants=lines[key].mutants + u.mutants) if key in lines else u
    rank: dict[tuple[str, str, int], int] = {}
    for i, m in enumerate(mutants):
        if m.status is Status.UNREACHED:
            rank.setdefault((m.target, m.file, m.line), i)
    return tuple(sorted(lines.values(), key=lambda u: rank.get((u.target, u.file, u.line), len(mutants))))


def _timing(parts: list[tuple[str, Analysis]]) -> Timing | None:
    """Summed over the parts: total_seconds is then the time the jobs spent together (CPU time, not wall
    time: parallel jobs overlap), so mutants/minute is per job-minute. None unless every part has one."""
    timings = [a.timing for _, a in parts]
    if any(t is None for t in timings):
        return None
    present = [t for t in timings if t is not None]
    return Timing(
        total_seconds=sum(t.total_seconds for t in present),
        reach_seconds=sum(t.reach_seconds for t in present),
        import_seconds=sum(t.import_seconds for t in present),
        cell_seconds=sum(t.cell_seconds for t in present),
        mutants_run=sum(t.mutants_run for t in present),
        reach_cached=all(t.reach_cached for t in present),
        patched=sum(t.patched for t in present),
    )


def merge(parts: Sequence[Analysis], labels: Sequence[str] | None = None) -> Analysis:
    """The unsplit analysis from every part of one `--shard K/N` run; `labels` name the parts in errors
    (default: 'part 1', 'part 2', ... in the order given)."""
    if not parts:
        raise MergeError("nothing to merge")
    named = list(zip(labels or [f"part {i}" for i in range(1, len(parts) + 1)], parts, strict=True))
    ordered, planned = _ordered_parts(named)
    _same_run(ordered)
    mutants = _mutants(ordered, planned)
    ids = {m.id for m in mutants}
    first = ordered[0][1]
    return Analysis(
        environment=dict(first.environment),
        cells=first.cells,
        targets=first.targets,
        missing=first.missing,
        mutants=mutants,
        unreached=_unreached(ordered, mutants),
        stale_equivalents=_stale(ordered, ids, lambda a: a.stale_equivalents),
        stale_killers=_stale(ordered, ids, lambda a: a.stale_killers),
        timing=_timing(ordered),
        shard=None,
        sample=first.sample,
        seed=first.seed,
    )


def _stale(
    ordered: Sequence[tuple[str, Analysis]], ids: set[str], listed: Callable[[Analysis], tuple[str, ...]]
) -> tuple[str, ...]:
    """A part may list as stale an id another part's mutants have: stale only if stale in every part."""
    first = [i for i in listed(ordered[0][1]) if i not in ids]
    return tuple(i for i in first if all(i in listed(a) for _, a in ordered))


def is_mutants(path: Path) -> bool:
    """A mutants.json (its top-level schema key), not a results.json; unreadable files are neither."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA


def merge_documents(paths: Sequence[Path], out: Path) -> str | None:
    """`offload-conformance merge` on mutants.json parts: writes the merged mutants.json, mutants.md and
    mutants.html into `out` and returns the line to print; None when no document is a mutants.json."""
    kinds = [is_mutants(p) for p in paths]
    if not any(kinds):
        return None
    if not all(kinds):
        part = paths[kinds.index(True)]
        other = paths[kinds.index(False)]
        what = "no such file" if not other.exists() else "not a mutants.json"
        raise MergeError(f"{other}: {what}, but {part} is: merge mutants.json parts only with each other")
    try:
        parts = [Analysis.read(p) for p in paths]
    except ValueError as e:
        raise MergeError(str(e).splitlines()[0]) from None
    merged = merge(parts, [str(p) for p in paths])
    report.write(merged, out)
    return f"merged {len(parts)} mutants.json parts, {len(merged.mutants)} mutants: {out / 'mutants.json'}"
