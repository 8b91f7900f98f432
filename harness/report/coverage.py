"""The coverage table: every fixture, its size and the weight kinds it exercises."""

from __future__ import annotations

from offload_conformance.fixtures.coverage import KINDS, FixtureInfo
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
