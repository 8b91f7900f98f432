"""bench.json: every ratio the issue asks for is there and is a number, computed from the runs."""

from __future__ import annotations

import math

import pytest

from offload_conformance.harness.tools.bench import CASES, Measured, Run, extrapolate, ratios, spread

REQUIRED = {
    "reference_anon_over_largest",
    "reference_anon_over_largest_100mb",
    "reference_rss_over_largest",
    "reference_time_over_cp",
    "reference_time_over_in_memory",
    "reference_read_amplification",
    "upstream_rss_over_reference",
    "one_to_many_spread",
}
MIB = 2**20


def _measured(key: str, seconds: float, rss: float, anon: float, copy: float | None = None) -> Measured:
    runs = tuple(
        Run(seconds * f, int(rss * f), int(anon * f), 1.0, 32 * MIB, copy * f if copy else None) for f in (0.9, 1, 1.2)
    )
    return Measured(key, key, runs)


def _sweep(ref: list[float], up: list[float]) -> list[dict]:
    return [
        {
            "layers": n,
            "checkpoint_bytes": n * 100 * MIB,
            "tensors": n * 50,
            "reference": {"extra_rss": r, "seconds": 1.0, "largest_tensor": MIB},
            "upstream": {"extra_rss": u, "seconds": 1.0, "largest_tensor": MIB},
        }
        for n, r, u in zip((4, 8, 16), ref, up, strict=True)
    ]


def test_ratios_have_every_required_key_as_a_number() -> None:
    big = {c.key: _measured(c.key, 2.0, 40 * MIB, 8 * MIB) for c in CASES}
    big["reference"] = _measured("reference", 2.6, 16 * MIB, 16 * MIB, copy=2.0)
    sweeps = {
        "hrm_text": _sweep([10 * MIB, 11 * MIB, 12 * MIB], [50, 100, 200]),
        "qwen3_moe": _sweep([1, 1, 1], [1, 2, 3]),
        "deepseek_v3_fp8": _sweep([4 * MIB, 5 * MIB, 6 * MIB], [1, 2, 3]),
    }
    r = ratios(big, 2.0, sweeps)
    assert set(r) >= REQUIRED
    assert all(isinstance(v, float) and math.isfinite(v) for v in r.values()), r
    assert r["reference_time_over_cp"] == pytest.approx(1.3)
    assert r["reference_anon_over_largest"] == pytest.approx(0.5)
    assert r["reference_time_over_cp_min"] == r["reference_time_over_cp_max"] == pytest.approx(1.3)
    assert r["one_to_many_spread"] == pytest.approx(2 / 11)
    assert r["one_to_many_growth_over_largest"] == pytest.approx(2)  # 12 - 10 MiB, largest 1 MiB
    assert r["one_to_many_growth_over_checkpoint_growth"] == pytest.approx(2 / 1200)  # layers 4 -> 16: 1200 MiB
    assert r["upstream_rss_over_reference"] == pytest.approx(2.5)
    assert r["quantized_spread"] == pytest.approx(2 / 5)


def test_spread_and_extrapolation() -> None:
    assert spread([1.0, 1.0, 1.0]) == 0
    assert spread([1.0, 3.0]) == 1.0
    big = {c.key: _measured(c.key, 2.0, 40 * MIB, 8 * MIB) for c in CASES}
    # upstream holds its checkpoint (RSS = bytes); the reference 1 KiB of bookkeeping per tensor
    sweep = _sweep([n * 50 * 1024.0 for n in (4, 8, 16)], [n * 100 * MIB for n in (4, 8, 16)])
    x = extrapolate(sweep, big, cp=1.0, big_bytes=10**9, big_tensors=1000)
    assert x["extrapolated"]["reference_peak_extra_rss"] == pytest.approx(40 * MIB + 91_000 * 1024)
    assert x["extrapolated"]["upstream_peak_extra_rss"] == pytest.approx(690e9 / 163)
    assert x["extrapolated"]["cp_seconds"] == pytest.approx(690)
