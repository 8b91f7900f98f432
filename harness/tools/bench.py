"""`nox -s bench`: what an offloaded save costs, measured side by side in one run.

Every number is the median of --repeats fresh cell processes (harness.runner.execute), on the
same machine, with the page cache as the previous run left it (warm for every case alike).
"""

from __future__ import annotations

import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.fixtures.coverage import describe
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.run.process import execute

MIB = 2**20


def scaled_spec(layers: int, hidden: int, experts: int, moe_intermediate: int) -> FixtureSpec:
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


@dataclass(frozen=True)
class Case:
    label: str
    mode: str
    impl: str
    max_shard_size: str | None = None


@dataclass(frozen=True)
class Measured:
    case: Case
    seconds: float  # median save time
    extra_rss: float  # median peak RSS above the pre-save RSS, bytes
    extra_anon: float  # the same for anonymous memory only (not reclaimable page cache)
    read_amplification: float | None
    largest_tensor: int
    output_dir: Path


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(spec: FixtureSpec, fixture: Path, case: Case, out: Path, repeats: int) -> Measured:
    """`fixture` is generate(spec), done once by the caller: verifying a GB-sized fixture costs seconds."""
    options = (("max_shard_size", case.max_shard_size),) if case.max_shard_size else ()
    cell = Cell(spec, by_name(case.mode), case.impl, options)
    seconds, extra, anon, amps, largest, workdir = [], [], [], [], 0, out
    for i in range(repeats):
        workdir = out / f"{spec.name}-{case.label}-{i}"
        run = execute(cell, fixture, workdir, timeout=3600)
        cost = run.cost
        if run.failure or run.unsupported or cost is None or run.save_seconds is None:
            raise RuntimeError(f"bench cell {cell.cell_id} failed: {run.failure or run.unsupported}")
        seconds.append(run.save_seconds)
        extra.append(cost.extra_rss)
        anon.append(cost.extra_anon)
        amps.append(cost.read_amplification)
        largest = cost.largest_tensor_bytes
        if i < repeats - 1:
            shutil.rmtree(workdir)
    return Measured(case, _median(seconds), _median(extra), _median(anon), amps[-1], largest, workdir / "saved")


def copy_seconds(saved: Path, out: Path, repeats: int) -> float:
    """`cp -r` of the saved files: the disk's own speed for the same bytes."""
    times = []
    for i in range(repeats):
        dest = out / f"cp-{i}"
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(saved), str(dest)], check=True)
        subprocess.run(["sync"], check=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(dest)
    return _median(times)


def machine() -> str:
    import os

    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1] if Path("/proc/meminfo").exists() else "?"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {int(mem) // 2**20} GiB RAM, "
        f"Python {platform.python_version()}"
    )


def run_bench(out: Path, scale_layers: int, sweep: list[int], repeats: int) -> str:
    out.mkdir(parents=True, exist_ok=True)
    big = scaled_spec(scale_layers, hidden=1024, experts=16, moe_intermediate=512)
    info = describe(big)
    cases = [
        Case("in-memory save", "in-memory", "upstream"),
        Case("reference, disk-full", "disk-full+offload_buffers", "reference"),
        Case("reference, disk-full, 100MB shards", "disk-full+offload_buffers", "reference", "100MB"),
        Case("upstream, disk-full", "disk-full+offload_buffers", "upstream"),
        Case("upstream, disk-full, 100MB shards", "disk-full+offload_buffers", "upstream", "100MB"),
    ]
    big_dir = generate(big)
    results = {c.label: measure(big, big_dir, c, out, repeats) for c in cases}
    cp = copy_seconds(results["reference, disk-full"].output_dir, out, repeats)
    largest = results["reference, disk-full"].largest_tensor
    ref, mem, up = results["reference, disk-full"], results["in-memory save"], results["upstream, disk-full"]

    lines = [
        "# offload-conformance bench",
        "",
        f"Machine: {machine()}. Median of {repeats} runs per case.",
        f"Fixture: {big.name} (Qwen3-MoE, {info.size_bytes / 2**30:.2f} GiB on disk, {info.tensors} tensors;"
        f" largest in-memory tensor {largest / MIB:.0f} MiB).",
        "",
        "| case | save s | peak extra RSS MiB | x largest tensor | peak extra anon MiB | x largest tensor |"
        " read amplification |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in results.values():
        amp = f"{m.read_amplification:.2f}" if m.read_amplification is not None else "-"
        lines.append(
            f"| {m.case.label} | {m.seconds:.2f} | {m.extra_rss / MIB:.0f} | {m.extra_rss / largest:.2f} |"
            f" {m.extra_anon / MIB:.0f} | {m.extra_anon / largest:.2f} | {amp} |"
        )
    lines.append(f"| `cp -r` of the saved files (+ sync) | {cp:.2f} | | | | | |")
    lines += [
        "",
        "Ratios (same run):",
        "",
        f"- reference offloaded save time / in-memory save time: {ref.seconds / mem.seconds:.2f}",
        f"- reference offloaded save time / `cp`: {ref.seconds / cp:.2f}",
        f"- upstream offloaded / reference: time {up.seconds / ref.seconds:.2f},"
        f" peak extra RSS {up.extra_rss / ref.extra_rss:.2f}",
        f"- reference peak extra anon / largest tensor: {ref.extra_anon / largest:.2f} (default shards),"
        f" {results['reference, disk-full, 100MB shards'].extra_anon / largest:.2f} (100MB shards)",
        f"- reference peak extra RSS / largest tensor: {ref.extra_rss / largest:.2f} (default shards),"
        f" {results['reference, disk-full, 100MB shards'].extra_rss / largest:.2f} (100MB shards)",
        "",
    ]

    sweep_rows = []
    for layers in sweep:
        spec = scaled_spec(layers, hidden=512, experts=8, moe_intermediate=256)
        spec_dir = generate(spec)
        r = measure(spec, spec_dir, Case("reference", "disk-full+offload_buffers", "reference"), out, repeats)
        u = measure(spec, spec_dir, Case("upstream", "disk-full+offload_buffers", "upstream"), out, repeats)
        sweep_rows.append((layers, r.extra_rss, u.extra_rss, r.largest_tensor, r.extra_anon))
        shutil.rmtree(r.output_dir.parent, ignore_errors=True)
        shutil.rmtree(u.output_dir.parent, ignore_errors=True)
    flat = [r for _, r, _, _, _ in sweep_rows]
    lines += [
        "## Peak extra RSS vs layers (hidden 512, 8 experts)",
        "",
        "| layers | reference MiB | upstream MiB | reference x largest tensor | reference anon MiB |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {r / MIB:.1f} | {u / MIB:.1f} | {r / big_t:.2f} | {a / MIB:.1f} |" for n, r, u, big_t, a in sweep_rows
    ]
    spread = (max(flat) - min(flat)) / statistics.mean(flat) if flat else 0
    lines += ["", f"Reference spread across layer counts: {100 * spread:.0f}% of the mean."]
    lines += [
        "",
        "RSS is the kernel's high-water mark and counts file-backed pages of the mmap-read offload files"
        " (reclaimable page cache); anon is anonymous memory only, sampled every 2 ms.",
    ]
    _plots(out, results, sweep_rows, largest)
    report = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(report)
    return report


def _plots(
    out: Path, results: dict[str, Measured], sweep_rows: list[tuple[int, float, float, int, float]], largest: int
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        (out / "plots-skipped.txt").write_text("matplotlib is not installed: `pip install matplotlib`\n")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = list(results)
    a.barh(labels, [results[k].extra_rss / largest for k in labels], color="#4a7ab5")
    a.axvline(1.5, color="red", linestyle="--", label="1.5 x largest tensor")
    a.set_xlabel("peak RSS above pre-save RSS, in largest tensors")
    a.legend()
    layers = [n for n, *_ in sweep_rows]
    b.plot(layers, [r / MIB for _, r, _, _, _ in sweep_rows], "o-", label="reference (RSS)")
    b.plot(layers, [a / MIB for *_, a in sweep_rows], "o--", label="reference (anon)")
    b.plot(layers, [u / MIB for _, _, u, _, _ in sweep_rows], "s-", label="upstream (RSS)")
    b.set_xlabel("layers")
    b.set_ylabel("peak extra RSS (MiB)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
