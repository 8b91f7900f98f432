"""Real cells: fixture loaded by transformers in a subprocess, saved, compared with the in-memory save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offload_conformance.fixtures import DEFAULT_FIXTURES, generate
from offload_conformance.harness.cli import main
from offload_conformance.harness.plan.cells import matrix as plan
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.results import SCHEMA_VERSION, RunResult
from offload_conformance.harness.run.runner import run_cells

pytestmark = pytest.mark.e2e
QWEN = DEFAULT_FIXTURES[0]
BROKEN = "tests.broken_impls"


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    impls = ["upstream", "reference", f"{BROKEN}:drop_one", "faults:offloaded-as-zeros"]
    result = run_cells(plan([QWEN], [by_name("disk-full")], impls), tmp_path_factory.mktemp("run"), Settings(jobs=2))
    return {c.impl: c for c in result.cells}


def test_reference_passes_with_bytes(disk_full: dict) -> None:
    cell = disk_full["reference"]
    assert (cell.outcome, cell.grade, cell.classes) == ("pass", "bytes", ())
    assert cell.hf_device_map == {"": "disk"}  # the whole model really was on disk


def test_upstream_cell_runs_and_is_judged(disk_full: dict) -> None:
    cell = disk_full["upstream"]
    assert cell.outcome in ("pass", "fail"), cell.detail
    assert cell.hf_device_map == {"": "disk"}


def test_dropped_tensor_is_missing_tensor(disk_full: dict) -> None:
    cell = disk_full[f"{BROKEN}:drop_one"]
    assert (cell.outcome, cell.classes) == ("fail", ("missing-tensor",))
    assert "experts.0.up_proj" in cell.detail


def test_offloaded_zeros_are_meta_or_empty(disk_full: dict) -> None:
    # Proves both that disk-full really offloads and that a never-loaded tensor is caught.
    cell = disk_full["faults:offloaded-as-zeros"]
    assert cell.outcome == "fail"
    assert cell.classes == ("meta-or-empty",)


def test_partial_mode_offloads_layers_only(tmp_path: Path) -> None:
    result = run_cells(plan([QWEN], [by_name("disk-partial+offload_buffers")], ["reference"]), tmp_path)
    (cell,) = result.cells
    assert cell.outcome == "pass"
    assert cell.hf_device_map["model.layers.0"] == "disk"
    assert cell.hf_device_map["model.embed_tokens"] == "cpu"


@pytest.mark.parametrize(
    ("impl", "timeout", "reason"),
    [
        ("crash", 120, "killed by SIGABRT"),
        ("segfault", 120, "killed by SIGSEGV"),
        ("hang", 15, "timed out after 15s"),
        ("balloon", 120, "exceeded the memory limit"),
        ("raises", 120, "save raised RuntimeError: could not revert conversion"),
        ("chatter", 120, "save raised RuntimeError: gave up after a lot of output"),
    ],
)
def test_broken_cell_is_error_and_run_goes_on(tmp_path: Path, impl: str, timeout: float, reason: str) -> None:
    cells = plan([QWEN], [by_name("disk-full")], [f"{BROKEN}:{impl}", "reference"])
    result = run_cells(cells, tmp_path, Settings(timeout=timeout, jobs=2, memory_limit=2 * 2**30))
    broken, ok = result.cells
    assert broken.outcome == "error"
    assert reason in broken.detail
    assert len(broken.log_tail) < 10_000  # the last lines, not the megabytes
    if impl == "chatter":
        assert "the last words of the cell" in broken.log_tail
    assert ok.outcome == "pass"
    assert not result.ok


def test_cli_run_writes_results_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["run", "--fixture", "qwen3_moe", "--mode", "disk-full", "--max-shard-size", "default", "--out", str(out)]
    assert main([*args, "--impl", "reference"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["require"] == "bytes"
    assert doc["environment"]["transformers"] != "not installed"
    (cell,) = doc["cells"]
    assert (cell["cell_id"], cell["outcome"], cell["grade"]) == ("qwen3_moe-disk-full-reference", "pass", "bytes")
    printed = capsys.readouterr().out
    assert "qwen3_moe-disk-full-reference" in printed and "--require bytes" in printed
    assert RunResult.read(out / "results.json").cells[0].outcome == "pass"
    assert main([*args, "--impl", f"{BROKEN}:drop_one", "--require", "tensors"]) == 1
    assert "--require tensors" in capsys.readouterr().out
    # A known-failures pattern that matches no cell of the run is named, with its file and line.
    xfails = tmp_path / "known.txt"
    xfails.write_text("qwen3_moe-disk-full-*  # listed\nqwen3_moe_typo-*  # matches nothing\n")
    assert main([*args, "--impl", f"{BROKEN}:drop_one", "--xfails", str(xfails)]) == 0  # a known failure
    printed = capsys.readouterr().out
    assert f"warning: {xfails}:2: pattern 'qwen3_moe_typo-*' matches no cell of this run" in printed
    assert f"{xfails}:1" not in printed


def test_buffer_offload_is_exercised_and_a_skipped_buffer_is_caught(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from offload_conformance.fixtures import by_name as fixture

    spec = fixture("deepseek_v3")
    mode = by_name("disk-full+offload_buffers")
    model = AutoModelForCausalLM.from_pretrained(
        generate(spec),
        dtype=torch.bfloat16,
        **mode.load_kwargs(None, tmp_path / "offload"),  # type: ignore[arg-type]
    )
    assert model.model.layers[1].mlp.gate.e_score_correction_bias.device.type == "meta"  # really offloaded

    modes = [mode, by_name("experts-on-disk+offload_buffers")]
    result = run_cells(
        plan([spec], modes, ["reference", "faults:skip-persistent-buffers"]), tmp_path / "run", Settings(jobs=2)
    )
    by_impl = {(c.mode, c.impl): c for c in result.cells}
    for m in modes:
        assert by_impl[(m.name, "reference")].outcome == "pass"
        broken = by_impl[(m.name, "faults:skip-persistent-buffers")]
        assert broken.classes == ("missing-tensor",)
        assert "e_score_correction_bias" in broken.detail
    assert by_impl[(modes[1].name, "reference")].hf_device_map["model.layers.1.mlp.gate"] == "disk"


@pytest.mark.parametrize("mode", ["accelerate-cpu+offload_buffers", "accelerate-disk"])
def test_accelerate_helpers_reference_passes(tmp_path: Path, mode: str) -> None:
    from offload_conformance.fixtures import by_name as fixture

    cells = plan([fixture("qwen3_moe_tied"), fixture("deepseek_v3")], [by_name(mode)], ["reference"])
    result = run_cells(cells, tmp_path, Settings(jobs=2))
    assert [c.outcome for c in result.cells] == ["pass", "pass"], [c.detail for c in result.cells]
    assert all(c.hf_device_map is None for c in result.cells)  # accelerate's helpers leave none


def test_a_run_split_over_jobs_merges_into_the_unsplit_run(tmp_path: Path) -> None:
    """`run --shard K/N` in N jobs, then `merge`: the same cells, in the same order, with the same verdicts."""
    args = ["run", "--fixture", "deepseek_v3", "--mode", "disk-full+offload_buffers"]
    args += ["--impl", "reference", "--impl", "faults:offloaded-as-zeros"]
    args += ["--max-shard-size", "default", "--max-shard-size", "24KB"]  # asked: no other options or contexts
    assert main([*args, "--out", str(tmp_path / "whole")]) == 1  # the fault fails its cells
    for k in (1, 2):
        main([*args, "--shard", f"{k}/2", "--out", str(tmp_path / f"part{k}")])
    parts = [str(tmp_path / f"part{k}" / "results.json") for k in (1, 2)]
    assert main(["merge", *parts, "--out", str(tmp_path / "merged")]) == 1
    whole = RunResult.read(tmp_path / "whole" / "results.json")
    merged = RunResult.read(tmp_path / "merged" / "results.json")
    verdicts = [[(c.cell_id, c.outcome, c.grade, c.classes) for c in doc.cells] for doc in (whole, merged)]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) == 4
    assert merged.baselines.keys() == whole.baselines.keys()
    assert all(len(RunResult.read(Path(p)).cells) == 2 for p in parts)  # each job ran half
