"""The set `all`: discovery from transformers' conversion mapping, deterministic tiny builds, and fixtures whose
in-memory and offloaded saves give the checkpoint back."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.generated.build import _values, build
from offload_conformance.fixtures.generated.check import offload_check, roundtrip
from offload_conformance.fixtures.generated.choose import discover
from offload_conformance.fixtures.generated.shrink import EXPERTS
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.fixtures.spec import GeneratedSpec


@pytest.fixture(scope="module")
def candidates() -> dict[str, object]:
    return {c.model_type: c for c in discover(["qwen3_moe", "llava", "gpt_oss", "llama"])}


def test_discover_conversions_and_moe(candidates: dict) -> None:
    assert "llama" not in candidates  # neither converted on load nor MoE
    assert candidates["qwen3_moe"].has_conversion and candidates["qwen3_moe"].is_moe
    assert candidates["gpt_oss"].is_moe and not candidates["gpt_oss"].has_conversion
    llava = candidates["llava"]
    assert (llava.auto_class, llava.has_conversion, llava.is_moe) == ("AutoModelForImageTextToText", True, False)
    assert "CLIPVisionModel" in llava.conversion_keys  # reached only through the vision sub-model


def test_value_stream_is_pinned() -> None:
    # Any change here changes every fixture's bytes: bump INIT_SCHEME with it.
    assert _values(0, "w", 4).tolist() == [
        0.007028758525848389,
        -0.3195481300354004,
        -0.49217361211776733,
        -0.14514315128326416,
    ]


def test_build_is_deterministic_and_tiny(candidates: dict, tmp_path: Path) -> None:
    c = candidates["qwen3_moe"]
    a = build(c, tmp_path / "a")
    b = build(c, tmp_path / "b")
    other = build(c, tmp_path / "c", seed=1)
    assert a["files"] == b["files"] and a["files"] != other["files"]
    assert a["model_class"] == "Qwen3MoeForCausalLM" and a["config_overrides"]["num_experts"] == EXPERTS
    assert a["bytes"] < 2_000_000 and (tmp_path / "a" / "config.json").is_file()


@pytest.mark.parametrize("model_type", ["qwen3_moe", "llava"])
def test_in_memory_and_offloaded_saves_match_the_fixture(candidates: dict, tmp_path: Path, model_type: str) -> None:
    c = candidates[model_type]
    build(c, tmp_path / "fixture")
    assert roundtrip(c, tmp_path / "fixture", tmp_path) is None
    assert offload_check(c, tmp_path / "fixture", tmp_path) is None


def test_a_generated_fixture_is_cached_and_records_its_recipe() -> None:
    spec = GeneratedSpec("qwen3_moe", "AutoModelForCausalLM")
    d = generate(spec)
    recipe = read_manifest(d)["recipe"]
    assert (recipe["model_type"], recipe["auto_class"], recipe["model_class"]) == (
        "qwen3_moe",
        "AutoModelForCausalLM",
        "Qwen3MoeForCausalLM",
    )
    assert recipe["config_overrides"]["num_experts"] == EXPERTS
    assert generate(spec) == d and spec.name == "gen_qwen3_moe"  # verified from the cache, same place


def test_a_named_architecture_that_cannot_build_is_one_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named from the set `all`, a fixture is looked up among the discovered architectures without building the
    set; one that cannot build here (timm_wrapper needs timm) is a usage error that says why, not a traceback."""
    from offload_conformance.fixtures import sets
    from offload_conformance.harness.cli import main

    built: list[str] = []
    monkeypatch.setattr(sets, "_discovered", lambda: [GeneratedSpec("timm_wrapper", "AutoModel")])
    monkeypatch.setattr(sets, "generated_set", lambda: built.append("all") or ([], []))
    assert main(["run", "--set", "all", "--fixture", "gen_timm_wrapper", "--out", str(tmp_path)]) == 2
    # which missing library transformers names first (timm, or PIL where pillow is absent) depends on the venv
    assert "fixture gen_timm_wrapper cannot be built here: ImportError: TimmWrapperModel requires the " in (
        capsys.readouterr().err
    )
    assert built == []  # the whole set was never built
