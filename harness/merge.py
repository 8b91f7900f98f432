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


def merge(docs: list[tuple[str, RunResult]]) -> RunResult:
    if not docs:
        raise MergeError("nothing to merge")
    check_fixtures(docs)
    standards = {doc.require for _, doc in docs}
    if len(standards) > 1:
        raise MergeError(f"documents use different standards: --require {' and '.join(sorted(standards))}")
    cells, seen = [], {}
    for label, doc in docs:
        version = describe_transformers(doc.environment)
        for cell in doc.cells:
            key = (cell.cell_id, cell.transformers or version)
            if key in seen:
                raise MergeError(f"cell {cell.cell_id} ({key[1]}) is in both {seen[key]} and {label}")
            seen[key] = label
            cells.append(dataclasses.replace(cell, transformers=cell.transformers or version))
    first = docs[0][1]
    versions = sorted({c.transformers for c in cells})
    env = dict(first.environment) if len(versions) == 1 else {**first.environment, "transformers": ", ".join(versions)}
    baselines = {k: v for _, d in docs for k, v in d.baselines.items()}
    fixtures = {k: v for _, d in docs for k, v in d.fixtures.items()}
    return RunResult(first.require, env, tuple(cells), baselines, fixtures)
