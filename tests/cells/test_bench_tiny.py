"""The bench end to end at a tiny scale: bench.json holds every case, sweep row and ratio."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from offload_conformance.harness.tools.bench import CASES, Sizes, run_bench
from tests.meta.test_bench import REQUIRED

pytestmark = pytest.mark.e2e


def test_tiny_bench_writes_bench_json(tmp_path: Path) -> None:
    tiny = Sizes(hidden=64, experts=4, moe_intermediate=32, intermediate=128)
    progress = io.StringIO()
    report = run_bench(
        tmp_path, scale_layers=1, sweep=[1, 2], repeats=1, big_sizes=tiny, sweep_sizes=tiny, stream=progress
    )
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert set(doc["cases"]) == {c.key for c in CASES}
    assert [row["layers"] for row in doc["sweeps"]["hrm_text"]] == [1, 2]
    assert [row["layers"] for row in doc["sweeps"]["deepseek_v3_fp8"]] == [1, 2]
    assert set(doc["ratios"]) >= REQUIRED
    assert all(isinstance(v, float) and math.isfinite(v) for v in doc["ratios"].values()), doc["ratios"]
    assert doc["ratios"]["reference_read_amplification"] == 1.0
    assert doc["cp"]["seconds"] > 0 and "| `cp -r`" in report
    # one progress line per run (not a terminal): 5 cases, then 3 models x 2 layer counts x 2 impls
    lines = progress.getvalue().splitlines()
    assert len(lines) == 17 and lines[-1].startswith("[17/17] bench-dsv3-fp8-2x64x4x32 upstream #1: "), lines
    assert lines[1].startswith("[2/17] bench-1x64x4x32 reference #1: ") and "cp + sync" in lines[1]
