from __future__ import annotations

import os
from pathlib import Path

import pytest
from safetensors import safe_open

from offload_conformance.fixtures import DEFAULT_FIXTURES, FixtureError, FixtureSpec, SpecError, generate, verify
from offload_conformance.fixtures.manifest import read_manifest, sha256_file

SPEC = DEFAULT_FIXTURES[0]


def _all_bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_same_spec_same_bytes(tmp_path: Path) -> None:
    a = generate(SPEC, tmp_path / "a")
    b = generate(SPEC, tmp_path / "b")
    assert a != b
    assert _all_bytes(a) == _all_bytes(b)


def test_other_seed_changes_every_tensor(tmp_path: Path) -> None:
    a = read_manifest(generate(SPEC, tmp_path / "a"))["tensors"]
    other = FixtureSpec(**{**SPEC.to_json(), "seed": 1, "extra": ()})
    b = read_manifest(generate(other, tmp_path / "b"))["tensors"]
    assert a.keys() == b.keys()
    assert all(a[n]["sha256"] != b[n]["sha256"] for n in a)


def test_tensor_values_are_distinct(tmp_path: Path) -> None:
    tensors = read_manifest(generate(SPEC, tmp_path))["tensors"]
    digests = [t["sha256"] for t in tensors.values()]
    assert len(set(digests)) == len(digests)
    with safe_open(generate(SPEC, tmp_path) / "model.safetensors", framework="pt") as f:
        w = f.get_tensor("model.layers.0.mlp.experts.0.up_proj.weight").float()
    assert w.unique().numel() > w.numel() // 4  # no constant fill (bf16 rounds many draws together)


def test_manifest_records_files_spec_and_tensors(tmp_path: Path) -> None:
    d = generate(SPEC, tmp_path)
    m = read_manifest(d)
    assert set(m["files"]) == {p.name for p in d.iterdir()} - {"manifest.json"}
    assert all(sha256_file(d / n) == h for n, h in m["files"].items())
    assert m["spec"] == SPEC.to_json()
    assert any(n.endswith("experts.3.down_proj.weight") for n in m["tensors"])


@pytest.mark.parametrize("tamper", ["flip-byte", "delete", "add"])
def test_tampered_fixture_is_refused(tmp_path: Path, tamper: str) -> None:
    d = generate(SPEC, tmp_path)
    weights = d / "model.safetensors"
    if tamper == "flip-byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif tamper == "delete":
        weights.unlink()
    else:
        (d / "stray.bin").write_bytes(b"x")
    with pytest.raises(FixtureError, match=r"model\.safetensors|stray\.bin"):
        verify(d)
    with pytest.raises(FixtureError):
        generate(SPEC, tmp_path)  # the cache is verified, never trusted


def test_cache_is_reused(tmp_path: Path) -> None:
    d = generate(SPEC, tmp_path)
    before = os.stat(d / "model.safetensors").st_mtime_ns
    assert generate(SPEC, tmp_path) == d
    assert os.stat(d / "model.safetensors").st_mtime_ns == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_experts_per_tok": 9, "num_experts": 4}, "num_experts_per_tok"),
        ({"architecture": "nope"}, "unknown architecture"),
        ({"dtype": "int8"}, "dtype"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"config_omits": ("model_type",)}, "config_omits"),
    ],
)
def test_impossible_specs_are_refused(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        generate(FixtureSpec(**{**SPEC.to_json(), **changes, "extra": ()}), tmp_path)


def test_config_omits_leaves_the_key_out_and_only_that(tmp_path: Path) -> None:
    import json

    bare = FixtureSpec(**{**SPEC.to_json(), "name": "bare", "extra": (), "config_omits": ("architectures",)})
    assert FixtureSpec.from_json(json.loads(json.dumps(bare.to_json()))) == bare
    assert "config_omits" not in SPEC.to_json()  # the other fixtures' cache keys stay as they were
    full = json.loads((generate(SPEC, tmp_path) / "config.json").read_text())
    config = json.loads((generate(bare, tmp_path) / "config.json").read_text())
    assert "architectures" in full and config == {k: v for k, v in full.items() if k != "architectures"}


def test_transformers_loads_fixture_without_missing_keys(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    d = generate(SPEC, tmp_path)
    model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    # transformers fuses the per-expert checkpoint tensors in memory: the case under test.
    names = set(model.state_dict())
    assert "model.layers.0.mlp.experts.gate_up_proj" in names
    assert not any(".experts.0." in n for n in names)
