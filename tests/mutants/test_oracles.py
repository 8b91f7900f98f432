"""The alternative oracles (harness.run.oracles) on real cells: each passes a correct save and each can fail.

The mutation analysis sets their verdicts beside the harness's; an oracle that could not fail would score every
mutant as survived, so each is shown failing here on a save that breaks what it looks at, and only that where
possible: a value the fixed forward input never reads fails the state dict alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name, generate
from offload_conformance.fixtures.forward import FORWARD_TOKENS
from offload_conformance.harness.outcomes import Oracle, OracleVerdict
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.run.process import execute
from tests import broken_impls

pytestmark = pytest.mark.e2e
BROKEN = "tests.broken_impls"
PASS, FAIL, NA = OracleVerdict.PASS, OracleVerdict.FAIL, OracleVerdict.NOT_APPLICABLE


def verdicts(logits: OracleVerdict, state_dict: OracleVerdict, names: OracleVerdict) -> dict[str, str]:
    return {Oracle.LOGITS: logits, Oracle.STATE_DICT: state_dict, Oracle.NAMES: names}


def judged(tmp_path: Path, fixture: str, impl: str, mode_name: str = "disk-full") -> dict[str, str] | None:
    spec = by_name(fixture)
    execution = execute(Cell(spec, mode(mode_name), impl), generate(spec), tmp_path / "cell", 300, oracles=True)
    return execution.oracles


@pytest.mark.parametrize(
    ("fixture", "impl", "expected"),
    [
        pytest.param("qwen3_moe", "upstream", verdicts(PASS, PASS, PASS), id="correct-save"),
        # One ulp in a row of the embedding no forward input token selects: the logits cannot see it.
        pytest.param("qwen3_moe", f"{BROKEN}:nudge_unread", verdicts(PASS, FAIL, PASS), id="unread-value"),
        # model.norm.weight written as model.final_norm.weight: missing and unexpected on reload (initialised).
        pytest.param("qwen3_moe", f"{BROKEN}:rename_one", verdicts(FAIL, FAIL, FAIL), id="renamed-tensor"),
        # One per-expert part of a fused tensor gone: transformers' reload raises (a conversion error).
        pytest.param("qwen3_moe", f"{BROKEN}:drop_one", verdicts(FAIL, FAIL, FAIL), id="reload-raises"),
        pytest.param("qwen3_moe", f"{BROKEN}:raises", verdicts(FAIL, FAIL, FAIL), id="save-raises"),
        # float8 weights kept on CPU: no forward pass (GPU kernels), the tensors compare as bytes.
        pytest.param("deepseek_v3_fp8", "upstream", verdicts(NA, PASS, PASS), id="fp8-no-forward"),
    ],
)
def test_verdicts(tmp_path: Path, fixture: str, impl: str, expected: dict[str, str]) -> None:
    assert judged(tmp_path, fixture, impl) == expected


def test_unsupported_cell_has_no_verdicts(tmp_path: Path) -> None:
    # The +forward twin cannot run float8 on CPU: the cell is unsupported, nothing is saved or judged.
    assert judged(tmp_path, "deepseek_v3_fp8", "upstream", "disk-full+forward") is None


def test_not_asked_no_verdicts(tmp_path: Path) -> None:
    spec = by_name("qwen3_moe")
    assert execute(Cell(spec, mode("disk-full"), "upstream"), generate(spec), tmp_path, 300).oracles is None


def test_nudged_row_is_never_read() -> None:
    # nudge_unread's premise: lifecycle.forward_logits's token ids (i * 7 + 3) % vocab never select row 0.
    spec = by_name("qwen3_moe")
    assert not spec.tie_word_embeddings  # a tied head would read row 0 for token 0's logit
    vocab = spec.vocab_size
    assert broken_impls.UNREAD == "model.embed_tokens.weight"
    assert all((i * 7 + 3) % vocab != 0 for i in range(FORWARD_TOKENS))
