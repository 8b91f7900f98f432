"""Combine result documents (e.g. one per CI job) into one."""

from __future__ import annotations

import dataclasses

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.results import RunResult


class MergeError(ValueError):
    pass


def check_fixtures(docs: list[tuple[str, RunResult]]) -> None:
    """Documents made from different fixture bytes cannot be compared or combined."""
    seen: dict[str, tuple[str, str]] = {}
    for label, doc in docs:
        for name, digest in doc.fixtures.items():
            if name in seen and seen[name][1] != digest:
                raise MergeError(
                    f"mismatched fixture sets: {name} is {seen[name][1]} in {seen[name][0]}"
                    f" but {digest} in {label} (different harness versions?)"
                )
            seen.setdefault(name, (label, digest))


def _shards(docs: list[tuple[str, RunResult]]) -> tuple[str, ...] | None:
    """The planned cell order when the documents are the parts of one split run; refuses overlaps, gaps
    and parts of different runs."""
    parts = [(label, doc.shard) for label, doc in docs if doc.shard is not None]
    if not parts:
        return None
    if len(parts) != len(docs):
        unsplit = next(label for label, doc in docs if doc.shard is None)
        raise MergeError(f"{unsplit} is not a part of a split run, but {parts[0][0]} is (--shard)")
    first_label, first = parts[0]
    by_index: dict[int, str] = {}
    for label, shard in parts:
        if (shard.count, shard.planned) != (first.count, first.planned):
            raise MergeError(f"{label} and {first_label} are parts of different runs (--shard and selection differ)")
        if shard.index in by_index:
            raise MergeError(f"shard {shard.index}/{shard.count} is in both {by_index[shard.index]} and {label}")
        by_index[shard.index] = label
    missing = sorted(set(range(1, first.count + 1)) - by_index.keys())
    if missing:
        raise MergeError(f"a gap: shard(s) {', '.join(f'{k}/{first.count}' for k in missing)} missing")
    return first.planned


def merge(docs: list[tuple[str, RunResult]]) -> RunResult:
    if not docs:
        raise MergeError("nothing to merge")
    check_fixtures(docs)
    planned = _shards(docs)
    standards = {doc.require for _, doc in docs}
    if len(standards) > 1:
        raise MergeError(f"documents use different standards: --require {' and '.join(sorted(standards))}")
    fp8 = {doc.fp8_on_cpu for _, doc in docs}
    if len(fp8) > 1:
        raise MergeError(f"documents loaded FP8 fixtures differently: --fp8-on-cpu {' and '.join(sorted(fp8))}")
    versions = {c.transformers or describe_transformers(d.environment) for _, d in docs for c in d.cells}
    # Cells name what ran them only where the documents come from several transformers.
    tag = len(versions) > 1
    cells, seen = [], {}
    for label, doc in docs:
        version = describe_transformers(doc.environment)
        for cell in doc.cells:
            key = (cell.cell_id, cell.transformers or version)
            if key in seen:
                raise MergeError(f"cell {cell.cell_id} ({key[1]}) is in both {seen[key]} and {label}")
            seen[key] = label
            cells.append(dataclasses.replace(cell, transformers=cell.transformers or version) if tag else cell)
    if planned is not None:
        order = {cell_id: i for i, cell_id in enumerate(planned)}
        if len(cells) != len(planned) or any(c.cell_id not in order for c in cells):
            raise MergeError(f"the parts hold {len(cells)} cells, the split run planned {len(planned)}")
        cells.sort(key=lambda c: order[c.cell_id])
    first = docs[0][1]
    env = dict(first.environment) if not tag else {**first.environment, "transformers": ", ".join(sorted(versions))}
    baselines = {k: v for _, d in docs for k, v in sorted(d.baselines.items())}
    fixtures = {k: v for _, d in docs for k, v in d.fixtures.items()}
    drift = {d.drift_from for _, d in docs}
    return RunResult(
        first.require,
        env,
        tuple(cells),
        dict(sorted(baselines.items())),
        fixtures,
        fp8_on_cpu=first.fp8_on_cpu,
        drift_from=drift.pop() if len(drift) == 1 else None,
    )
