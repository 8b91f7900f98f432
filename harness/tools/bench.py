"""`nox -s bench`: what an offloaded save costs, measured side by side in one run.

Every figure is the median of --repeats fresh cell processes (harness.run.process.execute), on the
same machine, with the page cache as the previous run left it (warm for every case alike). The
repeats are interleaved (repeat 1 of every case, then repeat 2 ...), so a slow spell of a shared
machine lands on every case alike, and each timed save starts with nothing dirty (the cell syncs
between load and save). Right after every reference save, `cp -r` of its output plus `sync` is
timed: the disk's own price for the same bytes, under the same conditions (its source read into the
page cache first, as the save's sources were).

Writes bench.md (tables), bench.json (every figure, the ratios, the extrapolation) and bench.png.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.fixtures.coverage import describe
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.report.progress import Progress
from offload_conformance.harness.report.regions import Table, markdown_table
from offload_conformance.harness.run.process import execute

MIB = 2**20
GB = 10**9
MODE = "disk-full+offload_buffers"


@dataclass(frozen=True)
class Sizes:
    """The dimensions of the generated models (the layer count is swept or set by --scale)."""

    hidden: int
    experts: int = 8
    moe_intermediate: int = 256
    intermediate: int = 1024  # the dense MLP of the one-to-many (HRM-Text-like) model


BIG = Sizes(hidden=1024, experts=16, moe_intermediate=512)
SWEEP = Sizes(hidden=512, experts=8, moe_intermediate=256, intermediate=1024)


def scaled_spec(layers: int, hidden: int, experts: int, moe_intermediate: int) -> FixtureSpec:
    """A Qwen3-MoE: per-expert tensors fused on load into [E, 2I, H] gate_up and [E, H, I] down."""
    return FixtureSpec(
        name=f"bench-{layers}x{hidden}x{experts}x{moe_intermediate}",
        architecture="qwen3_moe",
        num_hidden_layers=layers,
        hidden_size=hidden,
        intermediate_size=2 * moe_intermediate,
        moe_intermediate_size=moe_intermediate,
        num_attention_heads=8,
        num_key_value_heads=4,
        num_experts=experts,
        num_experts_per_tok=2,
        vocab_size=1024,
    )


def one_to_many_spec(layers: int, hidden: int, intermediate: int) -> FixtureSpec:
    """An HRM-Text: fused gqkv_proj / gate_up_proj split on load, so the save joins them again
    (many-to-one); `layers` per stack, two stacks."""
    return FixtureSpec(
        name=f"bench-hrm-{layers}x{hidden}x{intermediate}",
        architecture="hrm_text",
        num_hidden_layers=layers,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=1024,
    )


def quantized_spec(layers: int, hidden: int, experts: int, moe_intermediate: int) -> FixtureSpec:
    """A DeepSeek-V3 with fine-grained FP8 weights (float8 per expert, a weight_scale_inv beside each), kept
    float8 on load (harness.run.fp8_on_cpu): the save writes quantized weights and their scales."""
    return replace(
        scaled_spec(layers, hidden, experts, moe_intermediate),
        name=f"bench-dsv3-fp8-{layers}x{hidden}x{experts}x{moe_intermediate}",
        architecture="deepseek_v3",
        num_key_value_heads=8,
        quantization="fp8-block",
    )


SWEPT: dict[str, Callable[[int, Sizes], FixtureSpec]] = {
    "qwen3_moe": lambda n, s: scaled_spec(n, s.hidden, s.experts, s.moe_intermediate),
    "hrm_text": lambda n, s: one_to_many_spec(n, s.hidden, s.intermediate),
    "deepseek_v3_fp8": lambda n, s: quantized_spec(n, s.hidden, s.experts, s.moe_intermediate),
}


@dataclass(frozen=True)
class Case:
    key: str  # its name in bench.json
    label: str
    mode: str
    impl: str
    max_shard_size: str | None = None
    copy: bool = False  # time `cp -r` + sync of its output after each run


CASES = (
    Case("in_memory", "in-memory save", "in-memory", "upstream"),
    Case("reference", "reference, disk-full", MODE, "reference", copy=True),
    Case("reference_100mb", "reference, disk-full, 100MB shards", MODE, "reference", "100MB"),
    Case("upstream", "upstream, disk-full", MODE, "upstream"),
    Case("upstream_100mb", "upstream, disk-full, 100MB shards", MODE, "upstream", "100MB"),
)


@dataclass(frozen=True)
class Run:
    seconds: float  # the save call alone
    extra_rss: int  # peak RSS above the pre-save RSS (the kernel's high-water mark)
    extra_anon: int  # the same for anonymous memory only (sampled)
    read_amplification: float | None
    largest_tensor: int
    copy_seconds: float | None = None  # `cp -r` of this run's output + sync, right after it


@dataclass(frozen=True)
class Measured:
    """The median of a case's runs, and the runs."""

    key: str
    label: str
    runs: tuple[Run, ...] = field(repr=False)

    def median(self, attr: str) -> float:
        values = [v for r in self.runs if (v := getattr(r, attr)) is not None]
        return statistics.median(values) if values else math.nan

    @property
    def seconds(self) -> float:
        return self.median("seconds")

    @property
    def extra_rss(self) -> float:
        return self.median("extra_rss")

    @property
    def extra_anon(self) -> float:
        return self.median("extra_anon")

    @property
    def read_amplification(self) -> float | None:
        amp = self.median("read_amplification")
        return None if math.isnan(amp) else amp

    @property
    def largest_tensor(self) -> int:
        return self.runs[-1].largest_tensor

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": self.seconds,
            "extra_rss": self.extra_rss,
            "extra_anon": self.extra_anon,
            "read_amplification": self.read_amplification,
            "largest_tensor": self.largest_tensor,
            "runs": [asdict(r) for r in self.runs],
        }


def run_once(spec: FixtureSpec, fixture: Path, case: Case, workdir: Path) -> Run:
    """One fresh cell process: load, sync, save (timed and measured); then the `cp` if asked."""
    options = (("max_shard_size", case.max_shard_size),) if case.max_shard_size else ()
    cell = Cell(spec, by_name(case.mode), case.impl, options)
    run = execute(cell, fixture, workdir, timeout=3600, sync_before_save=True)
    cost = run.cost
    if run.failure or run.unsupported or cost is None or run.save_seconds is None:
        raise RuntimeError(f"bench cell {cell.cell_id} failed: {run.failure or run.unsupported}")
    copied = copy_seconds(run.save_dir, workdir / "cp") if case.copy else None
    return Run(
        run.save_seconds,
        cost.extra_rss or 0,
        cost.extra_anon or 0,
        cost.read_amplification,
        cost.largest_tensor_bytes,
        copied,
    )


def warm(directory: Path) -> None:
    """Read every file once, so it is in the page cache."""
    buffer = bytearray(8 * MIB)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def copy_seconds(saved: Path, dest: Path) -> float:
    """`cp -r` of the saved files + `sync`: the disk's own price for the same bytes. The save read its
    sources from the page cache; so does the cp (a save may have written past the page cache)."""
    warm(saved)
    os.sync()  # start from nothing dirty, as the timed save did
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(saved), str(dest)], check=True)
    subprocess.run(["sync"], check=True)
    seconds = time.perf_counter() - t0
    shutil.rmtree(dest)
    return seconds


class Steps:
    """Counts the bench's runs for its progress bar (harness.report.progress, as `run` shows cells)."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.done = 0
        self.progress = Progress(total, what="runs", stream=stream)

    def __call__(self, what: str) -> None:
        self.done += 1
        self.progress.step(self.done, self.total, what)

    def close(self) -> None:
        self.progress.close()


def measure(
    spec: FixtureSpec, cases: tuple[Case, ...], out: Path, repeats: int, steps: Steps | None = None
) -> dict[str, Measured]:
    """Every case `repeats` times, interleaved; each run's directory is removed after it."""
    fixture = generate(spec)  # once: verifying a GB-sized fixture costs seconds
    runs: dict[str, list[Run]] = {c.key: [] for c in cases}
    for i in range(repeats):
        for case in cases:
            workdir = out / f"{spec.name}-{case.key}-{i}"
            run = run_once(spec, fixture, case, workdir)
            runs[case.key].append(run)
            shutil.rmtree(workdir, ignore_errors=True)
            if steps is not None:
                copied = f", cp + sync {run.copy_seconds:.2f}s" if run.copy_seconds is not None else ""
                steps(f"{spec.name} {case.key} #{i + 1}: {run.seconds:.2f}s{copied}")
    return {c.key: Measured(c.key, c.label, tuple(runs[c.key])) for c in cases}


def spread(values: list[float]) -> float:
    """(max - min) / mean."""
    return (max(values) - min(values)) / statistics.mean(values) if values and statistics.mean(values) else math.nan


def _slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys on xs."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return my - slope * mx, slope


# DeepSeek-V3 as published: 671B parameters in 163 shards, FP8 weights (about a byte a parameter, plus
# BF16 embeddings and FP32 block scales: taken as 690 GB). Tensors: about 92,000, counted from its config
# (58 MoE layers of 256 experts x 3 projections, each weight with its scale, plus attention and norms).
DEEPSEEK_V3 = {"parameters": 671e9, "bytes": 690e9, "shards": 163, "tensors": 92_000}


def extrapolate(
    sweep: list[dict[str, Any]], big: dict[str, Measured], cp: float, big_bytes: int, big_tensors: int
) -> dict[str, Any]:
    """A DeepSeek-V3-sized save, from the MoE layer sweep and the 1 GiB fixture.

    Memory: each implementation's peak extra RSS is fitted linearly over the sweep. Upstream holds
    the tensors of the shard it writes: its line against the checkpoint's bytes is applied to one
    shard (690 GB / 163). The reference holds no tensor data, only bookkeeping per tensor: the 1 GiB
    fixture's measured peak (which includes the fixed buffers of its direct writes) plus the sweep's
    slope against the tensor count for every further tensor. Time: the seconds per byte measured on
    the 1 GiB fixture, applied to 690 GB (assumes the same disk-bound throughput; at that size the
    offload files no longer fit in the page cache, so the save and the cp would both read them from
    disk too)."""
    nbytes = [float(r["checkpoint_bytes"]) for r in sweep]
    tensors = [float(r["tensors"]) for r in sweep]
    _, ref_per_tensor = _slope(tensors, [r["reference"]["extra_rss"] for r in sweep])
    up_base, up_per_byte = _slope(nbytes, [r["upstream"]["extra_rss"] for r in sweep])
    shard = DEEPSEEK_V3["bytes"] / DEEPSEEK_V3["shards"]
    scale = DEEPSEEK_V3["bytes"] / big_bytes
    return {
        "checkpoint": DEEPSEEK_V3,
        "measured": {
            "reference_extra_rss_per_tensor": ref_per_tensor,
            "reference_extra_rss_1gib_fixture": big["reference"].extra_rss,
            "upstream_extra_rss_per_checkpoint_byte": up_per_byte,
            "upstream_extra_rss_intercept": up_base,
            "seconds_per_gb": {k: big[k].seconds / big_bytes * GB for k in ("reference", "upstream", "in_memory")}
            | {"cp": cp / big_bytes * GB},
        },
        "extrapolated": {
            "reference_peak_extra_rss": big["reference"].extra_rss
            + ref_per_tensor * (DEEPSEEK_V3["tensors"] - big_tensors),
            "upstream_peak_extra_rss": up_base + up_per_byte * shard,
            "reference_seconds": big["reference"].seconds * scale,
            "upstream_seconds": big["upstream"].seconds * scale,
            "cp_seconds": cp * scale,
        },
    }


def ratios(big: dict[str, Measured], cp: float, sweeps: dict[str, list[dict[str, Any]]]) -> dict[str, float | None]:
    ref, largest = big["reference"], big["reference"].largest_tensor
    pairs = [r.seconds / r.copy_seconds for r in ref.runs if r.copy_seconds]
    return {
        "reference_anon_over_largest": ref.extra_anon / largest,
        "reference_anon_over_largest_100mb": big["reference_100mb"].extra_anon / largest,
        "reference_rss_over_largest": ref.extra_rss / largest,
        "reference_rss_over_largest_100mb": big["reference_100mb"].extra_rss / largest,
        "reference_time_over_cp": ref.seconds / cp,
        # The same, run by run (each save against the cp right after it): how much the ratio moves.
        "reference_time_over_cp_min": min(pairs),
        "reference_time_over_cp_max": max(pairs),
        "reference_time_over_in_memory": ref.seconds / big["in_memory"].seconds,
        "reference_read_amplification": ref.read_amplification,
        "reference_read_amplification_100mb": big["reference_100mb"].read_amplification,
        "upstream_rss_over_reference": big["upstream"].extra_rss / ref.extra_rss,
        "upstream_time_over_reference": big["upstream"].seconds / ref.seconds,
        "one_to_many_spread": spread([r["reference"]["extra_rss"] for r in sweeps["hrm_text"]]),
        "one_to_many_upstream_spread": spread([r["upstream"]["extra_rss"] for r in sweeps["hrm_text"]]),
        # The spread is relative to a peak that may be tiny; these say how much it grows in absolute terms.
        "one_to_many_growth_over_largest": growth(sweeps["hrm_text"], "reference") / _largest(sweeps["hrm_text"]),
        "one_to_many_growth_over_checkpoint_growth": growth(sweeps["hrm_text"], "reference")
        / growth(sweeps["hrm_text"], None),
        "one_to_many_upstream_growth_over_checkpoint_growth": growth(sweeps["hrm_text"], "upstream")
        / growth(sweeps["hrm_text"], None),
        "moe_spread": spread([r["reference"]["extra_rss"] for r in sweeps["qwen3_moe"]]),
        "moe_growth_over_checkpoint_growth": growth(sweeps["qwen3_moe"], "reference")
        / growth(sweeps["qwen3_moe"], None),
        "quantized_spread": spread([r["reference"]["extra_rss"] for r in sweeps["deepseek_v3_fp8"]]),
        "quantized_growth_over_checkpoint_growth": growth(sweeps["deepseek_v3_fp8"], "reference")
        / growth(sweeps["deepseek_v3_fp8"], None),
    }


def growth(rows: list[dict[str, Any]], impl: str | None) -> float:
    """From the fewest layers to the most: the growth of `impl`'s peak extra RSS (None: of the checkpoint)."""
    first, last = rows[0], rows[-1]
    if impl is None:
        return float(last["checkpoint_bytes"] - first["checkpoint_bytes"])
    return float(last[impl]["extra_rss"] - first[impl]["extra_rss"])


def _largest(rows: list[dict[str, Any]]) -> float:
    return float(rows[-1]["reference"]["largest_tensor"])


def machine() -> str:
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1] if Path("/proc/meminfo").exists() else "?"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {int(mem) // 2**20} GiB RAM, "
        f"Python {platform.python_version()}"
    )


SWEEP_CASES = (Case("reference", "reference", MODE, "reference"), Case("upstream", "upstream", MODE, "upstream"))


def run_sweeps(
    out: Path, sweep: list[int], repeats: int, sizes: Sizes, steps: Steps | None = None
) -> dict[str, list[dict[str, Any]]]:
    cases = SWEEP_CASES
    sweeps: dict[str, list[dict[str, Any]]] = {}
    for model, spec_of in SWEPT.items():
        rows = []
        for layers in sweep:
            spec = spec_of(layers, sizes)
            info = describe(spec)
            measured = measure(spec, cases, out, repeats, steps)
            rows.append(
                {"layers": layers, "fixture": spec.name, "checkpoint_bytes": info.size_bytes, "tensors": info.tensors}
                | {k: m.to_json() for k, m in measured.items()}
            )
        sweeps[model] = rows
    return sweeps


def run_bench(
    out: Path,
    scale_layers: int,
    sweep: list[int],
    repeats: int,
    big_sizes: Sizes = BIG,
    sweep_sizes: Sizes = SWEEP,
    stream: IO[str] | None = None,
) -> str:
    """The whole bench; its progress goes to `stream` (default stderr: a bar on a terminal, lines otherwise)."""
    out.mkdir(parents=True, exist_ok=True)
    big = scaled_spec(scale_layers, big_sizes.hidden, big_sizes.experts, big_sizes.moe_intermediate)
    info = describe(big)
    steps = Steps(repeats * (len(CASES) + len(SWEPT) * len(sweep) * len(SWEEP_CASES)), stream)
    try:
        results = measure(big, CASES, out, repeats, steps)
        cp = results["reference"].median("copy_seconds")
        sweeps = run_sweeps(out, sweep, repeats, sweep_sizes, steps)
    finally:
        steps.close()
    document = {
        "machine": machine(),
        "repeats": repeats,
        "fixture": {"name": big.name, "bytes": info.size_bytes, "tensors": info.tensors},
        "largest_tensor": results["reference"].largest_tensor,
        "cases": {k: m.to_json() for k, m in results.items()},
        "cp": {"seconds": cp, "runs": [r.copy_seconds for r in results["reference"].runs]},
        "sweeps": sweeps,
        "ratios": ratios(results, cp, sweeps),
        "deepseek_v3": extrapolate(sweeps["qwen3_moe"], results, cp, info.size_bytes, info.tensors),
    }
    (out / "bench.json").write_text(json.dumps(document, indent=2) + "\n")
    report = markdown(document)
    (out / "bench.md").write_text(report)
    _plots(out, document)
    return report


def _mib(x: float) -> str:
    return f"{x / MIB:.1f}"


CP_LABEL = "`cp -r` of the saved files (+ sync)"
CASES_TABLE = Table(
    (
        "case",
        "save s",
        "peak extra RSS MiB",
        "x largest tensor",
        "peak extra anon MiB",
        "x largest tensor",
        "read amplification",
    ),
    rows=(*(c.label for c in CASES), CP_LABEL),
)
LAYERS_TABLE = Table(
    (
        "layers",
        "checkpoint MiB",
        "reference RSS MiB",
        "reference anon MiB",
        "reference s",
        "upstream RSS MiB",
        "upstream anon MiB",
        "upstream s",
    )
)
SWEPT_TITLES = {
    "qwen3_moe": "Qwen3-MoE (fused experts, one-to-one and split per expert)",
    "hrm_text": "HRM-Text (fused tensors split on load: the save joins them, many-to-one)",
    "deepseek_v3_fp8": "DeepSeek-V3, fine-grained FP8 (float8 experts and their block scales, saved quantized)",
}


def region_shape() -> tuple[Table, ...]:
    """The tables of bench.md (and of docs/cost.md's region), in order."""
    return (CASES_TABLE, *(LAYERS_TABLE for _ in SWEPT))


def markdown(doc: dict[str, Any]) -> str:
    return "# offload-conformance bench\n\n" + region(doc, heading="##")


def region(doc: dict[str, Any], heading: str = "###") -> str:
    """Every table and ratio of a bench.json, under headings of level `heading`."""
    largest, r = doc["largest_tensor"], doc["ratios"]
    fixture = doc["fixture"]
    cases = []
    for c in doc["cases"].values():
        amp = f"{c['read_amplification']:.2f}" if c["read_amplification"] is not None else "-"
        cases.append(
            [
                c["label"],
                f"{c['seconds']:.2f}",
                f"{c['extra_rss'] / MIB:.0f}",
                f"{c['extra_rss'] / largest:.2f}",
                f"{c['extra_anon'] / MIB:.0f}",
                f"{c['extra_anon'] / largest:.2f}",
                amp,
            ]
        )
    cases.append([CP_LABEL, f"{doc['cp']['seconds']:.2f}", "", "", "", "", ""])
    lines = [
        f"Machine: {doc['machine']}. Median of {doc['repeats']} runs per case, interleaved.",
        f"Fixture: {fixture['name']} (Qwen3-MoE, {fixture['bytes'] / 2**30:.2f} GiB on disk, {fixture['tensors']}"
        f" tensors; largest in-memory tensor {largest / MIB:.0f} MiB).",
        "",
        markdown_table(CASES_TABLE, cases),
    ]
    runs = ", ".join(f"{x:.2f}" for x in doc["cp"]["runs"])
    saves = ", ".join(f"{x['seconds']:.2f}" for x in doc["cases"]["reference"]["runs"])
    lines += [
        f"Run by run, reference save s: {saves}; `cp` + sync s: {runs}.",
        "",
        "Ratios (same run; all in bench.json):",
        "",
        f"- reference save time / `cp` + sync: {r['reference_time_over_cp']:.2f}"
        f" (run by run {r['reference_time_over_cp_min']:.2f} to {r['reference_time_over_cp_max']:.2f})",
        f"- reference save time / in-memory save time: {r['reference_time_over_in_memory']:.2f}",
        f"- reference peak extra anon / largest tensor: {r['reference_anon_over_largest']:.2f} (default shards),"
        f" {r['reference_anon_over_largest_100mb']:.2f} (100MB shards)",
        f"- reference peak extra RSS / largest tensor: {r['reference_rss_over_largest']:.2f} (default shards),"
        f" {r['reference_rss_over_largest_100mb']:.2f} (100MB shards)",
        f"- reference read amplification: {r['reference_read_amplification']:.2f}",
        f"- upstream / reference: peak extra RSS {r['upstream_rss_over_reference']:.1f},"
        f" time {r['upstream_time_over_reference']:.2f}",
        "",
    ]
    for model, rows in doc["sweeps"].items():
        table = []
        for row in rows:
            ref, up = row["reference"], row["upstream"]
            table.append(
                [
                    row["layers"],
                    _mib(row["checkpoint_bytes"]),
                    _mib(ref["extra_rss"]),
                    _mib(ref["extra_anon"]),
                    f"{ref['seconds']:.2f}",
                    _mib(up["extra_rss"]),
                    _mib(up["extra_anon"]),
                    f"{up['seconds']:.2f}",
                ]
            )
        key = {"hrm_text": "one_to_many", "deepseek_v3_fp8": "quantized"}.get(model, "moe")
        lines += [
            f"{heading} Peak extra memory vs layers: {SWEPT_TITLES[model]}",
            "",
            markdown_table(LAYERS_TABLE, table),
            f"Reference peak RSS spread across layer counts: {100 * r[f'{key}_spread']:.0f}% of the mean; its growth"
            f" is {100 * r[f'{key}_growth_over_checkpoint_growth']:.2f}% of the checkpoint's growth.",
            "",
        ]
    x = doc["deepseek_v3"]["extrapolated"]
    lines += [
        f"{heading} Extrapolated: a DeepSeek-V3-sized checkpoint (671B parameters, 690 GB, 163 shards)",
        "",
        f"- reference: peak extra RSS {x['reference_peak_extra_rss'] / MIB:.0f} MiB,"
        f" save {x['reference_seconds'] / 60:.0f} min",
        f"- upstream: peak extra RSS {x['upstream_peak_extra_rss'] / 2**30:.1f} GiB,"
        f" save {x['upstream_seconds'] / 60:.0f} min",
        f"- `cp` + sync of the same bytes: {x['cp_seconds'] / 60:.0f} min",
        "",
        "RSS is the kernel's high-water mark and counts file-backed pages the save maps (reclaimable page"
        " cache); anon is anonymous memory only, sampled every 2 ms.",
    ]
    return "\n".join(lines) + "\n"


def _plots(out: Path, doc: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        (out / "plots-skipped.txt").write_text("matplotlib is not installed: `pip install matplotlib`\n")
        return
    largest = doc["largest_tensor"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [c["label"] for c in doc["cases"].values()]
    a.barh(labels, [c["extra_anon"] / largest for c in doc["cases"].values()], color="#4a7ab5")
    a.axvline(1.0, color="red", linestyle="--", label="1 x largest tensor")
    a.set_xlabel("peak anonymous memory above pre-save, in largest tensors")
    a.legend()
    for model, marker in (("qwen3_moe", "o"), ("hrm_text", "s"), ("deepseek_v3_fp8", "^")):
        rows = doc["sweeps"][model]
        layers = [row["layers"] for row in rows]
        b.plot(layers, [row["reference"]["extra_rss"] / MIB for row in rows], f"{marker}-", label=f"reference {model}")
        b.plot(layers, [row["upstream"]["extra_rss"] / MIB for row in rows], f"{marker}--", label=f"upstream {model}")
    b.set_xlabel("layers")
    b.set_ylabel("peak extra RSS (MiB)")
    b.set_yscale("log")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
