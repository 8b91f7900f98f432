"""`offload-conformance fuzz --damage` itself: the reference passes a small run, a reference whose preflight checks
nothing is caught (silent-wrong or crash, exit 1), restoring the storage between cases is sound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offload_conformance.harness.cli import main
from offload_conformance.harness.plan.impls import resolve
from offload_conformance.harness.tools.damage import run
from offload_conformance.harness.tools.damage.run import bad, fuzz_damage
from offload_conformance.harness.tools.damage.verdicts import Saved, Storage, Verdict, judge

SMALL = (("llama", "disk-full"), ("qwen3_moe", "disk-partial+offload_buffers"))


def test_the_reference_passes_a_small_run(tmp_path: Path) -> None:
    document = fuzz_damage({"reference": resolve("reference")}, 30, tmp_path, seed=3, targets=SMALL)
    assert document["cases"] == 30 == len(document["records"])
    assert bad(document, ["reference"]) == {}, document["verdicts"]
    assert sum(document["verdicts"]["reference"].values()) == 30
    written = json.loads((tmp_path / "damage.json").read_text())
    assert written["verdicts"] == document["verdicts"]
    # every control (before and after the cases) is identical: a restored storage is the loaded one
    assert {v for runs in document["controls"].values() for r in runs for v in r.values()} == {"identical"}


def test_a_reference_without_preflight_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from offload_conformance.reference_impl import save

    monkeypatch.setattr(save, "preflight", lambda model, state=None: None)  # the broken reference: checks nothing
    monkeypatch.setattr(run, "TARGETS", SMALL)
    code = main(["fuzz", "--damage", "--examples", "30", "--seed", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    verdicts = json.loads((tmp_path / "damage.json").read_text())["verdicts"]["reference"]
    assert code == 1, out
    assert verdicts.get("silent-wrong", 0) + verdicts.get("crash", 0) > 0, verdicts
    assert "FAILED: reference" in out and "upstream:" in out  # both IUTs' tables


def test_verdicts() -> None:
    names = frozenset({"model.safetensors", "lm_head.weight"})
    assert judge(Saved("OffloadError", "offloaded lm_head.weight: file x is missing"), names, None, None) == "refused"
    assert judge(Saved("KeyError", "'lm_head.weight'"), names, None, None) == Verdict.CRASH  # names it, says nothing
    assert judge(Saved("OSError", "No such device (os error 19)"), names, None, None) == Verdict.CRASH
    assert judge(Saved("signal SIGBUS"), names, None, None) == Verdict.CRASH
    assert judge(Saved(), names, (), None) == Verdict.IDENTICAL
    assert judge(Saved(), names, ("values",), Storage.VALUES) == Verdict.UNDETECTABLE
    assert judge(Saved(), names, ("values",), Storage.INCONSISTENT) == Verdict.SILENT_WRONG
    assert judge(Saved(), names, ("shape",), Storage.VALUES) == Verdict.SILENT_WRONG
    assert judge(Saved(), names, None, None) == Verdict.CRASH  # no error and nothing written


def test_a_restore_that_does_not_restore_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offload_conformance.harness.tools.damage.storage import Loaded

    monkeypatch.setattr(Loaded, "restore", lambda self: None)
    with pytest.raises(RuntimeError, match="not its pristine copy after a restore"):
        fuzz_damage({"reference": resolve("reference")}, 10, tmp_path, seed=3, targets=SMALL[:1])
