from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import find, given, settings

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.strategies import specs
from offload_conformance.harness.cli import main
from offload_conformance.harness.outcomes import Grade
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.tools.fuzz import fuzz


def test_shrinking_reaches_small_specs() -> None:
    small = find(specs(), lambda s: s.tie_word_embeddings, settings=settings(database=None, derandomize=True))
    assert (small.num_hidden_layers, small.num_experts, small.num_experts_per_tok) == (1, 2, 1)
    assert small.hidden_size == 32 and small.quantization == "none"


@settings(max_examples=15, deadline=None, database=None)
@given(spec=specs())
def test_generated_specs_are_loadable_checkpoints(spec) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    _, info = AutoModelForCausalLM.from_pretrained(
        generate(spec), dtype=getattr(torch, spec.dtype), output_loading_info=True
    )
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), (spec, info)


@pytest.mark.e2e
def test_fuzz_finds_shrinks_and_prints_a_working_repro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finding = fuzz("faults:offloaded-as-zeros", [by_name("disk-full")], 5, tmp_path, Grade.BYTES, 120)
    assert finding is not None
    assert finding.result.classes == ("meta-or-empty",)
    assert finding.cell.fixture.num_hidden_layers == 1  # shrunk
    argv = shlex.split(finding.command())
    assert argv[:2] == ["offload-conformance", "run"]
    assert main([*argv[1:], "--out", str(tmp_path / "repro")]) == 1  # the command reproduces the failure
    assert "meta-or-empty" in capsys.readouterr().out
