"""The coverage table: every fixture, its size and the weight kinds it exercises."""

from __future__ import annotations

from offload_conformance.fixtures.coverage import KINDS, FixtureInfo
from offload_conformance.fixtures.generate import generate
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.fixtures.spec import GeneratedSpec
from offload_conformance.harness.report.table import aligned


def table(infos: list[FixtureInfo]) -> str:
    head = ["fixture", "architecture", "size", "tensors", "shards", *KINDS]
    rows = [head]
    for i in infos:
        rows.append(
            [
                i.name,
                i.architecture,
                f"{i.size_bytes / 1024:.0f} KiB",
                str(i.tensors),
                str(i.shards),
                *("x" if k in i.kinds else "." for k in KINDS),
            ]
        )
    total = ["covered by", "", "", "", "", *(str(sum(k in i.kinds for i in infos)) for k in KINDS)]
    rows.append(total)
    lines = [aligned(rows, footer=1)]
    missing = [k for k in KINDS if not any(k in i.kinds for i in infos)]
    if missing:
        lines.append(f"not covered by any fixture: {', '.join(missing)}")
    return "\n".join(lines)


def generated_table(specs: list[GeneratedSpec]) -> str:
    """The set `all`: each architecture, the class that builds it, whether it is MoE, its size."""
    rows = [["fixture", "auto class", "model class", "moe", "tensors", "size"]]
    for spec in specs:
        recipe = read_manifest(generate(spec))["recipe"]
        rows.append(
            [
                spec.name,
                spec.auto_class,
                str(recipe["model_class"]),
                "x" if recipe["is_moe"] else ".",
                str(recipe["n_tensors"]),
                f"{int(recipe['bytes']) / 1024:.0f} KiB",
            ]
        )
    return aligned(rows)
