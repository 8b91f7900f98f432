"""The offload folder judged on its own terms (offload-copy), and a fixture loaded in another dtype than its files'."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from offload_conformance.fixtures import DEFAULT_FIXTURES, FixtureSpec
from offload_conformance.fixtures.manifest import read_manifest, write_manifest
from offload_conformance.fixtures.registry import by_name as fixture
from offload_conformance.fixtures.spec import SpecError
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.offload_storage import offload_copies
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from tests.ckpt import base_tensors, write

UP0, UP1 = "model.layers.0.mlp.experts.0.up_proj.weight", "model.layers.0.mlp.experts.1.up_proj.weight"


def _fixture(tmp: Path) -> Path:
    directory = write(tmp / "fixture", base_tensors())
    write_manifest(directory, DEFAULT_FIXTURES[0], frozenset(), "digest")
    return directory


def _offload(tmp: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """An offload folder as transformers 5.x writes it: one safetensors file per weight the load changed."""
    folder = tmp / "offload"
    folder.mkdir(parents=True)
    for name, t in tensors.items():
        save_file({name: t.contiguous()}, folder / f"{name}.safetensors")
    return folder


def test_a_weight_the_load_converted_is_no_copy(tmp_path: Path) -> None:
    t = base_tensors()
    fused = torch.stack([t[UP0], t[UP1]])  # what the load makes of the per-expert tensors
    assert offload_copies(_fixture(tmp_path), _offload(tmp_path, {"mlp.experts.gate_up_proj": fused})) == []


def test_a_checkpoint_tensor_copied_into_the_offload_folder_is_named(tmp_path: Path) -> None:
    t = base_tensors()
    # under its in-memory name (a renaming only), which is how a load that should have read it in place stores it
    folder = _offload(tmp_path, {"layers.0.norm": t["model.norm.weight"], "fused": torch.stack([t[UP0], t[UP1]])})
    (found,) = offload_copies(_fixture(tmp_path), folder)
    assert (found.cls, found.tensor) == (FailureClass.OFFLOAD_COPY, "layers.0.norm")
    assert "1 tensors the checkpoint stores as they are" in found.detail and "model.norm.weight" in found.detail
    # a link to the checkpoint's own file (compressed-tensors' disk cache) reads it in place
    linked = tmp_path / "linked" / "offload"
    linked.mkdir(parents=True)
    (linked / "cache_0.safetensors").symlink_to(_fixture(tmp_path / "linked") / "model.safetensors")
    assert offload_copies(_fixture(tmp_path), linked) == []
    # the same values in another dtype are a conversion (the dtype asked for on load), not a copy
    cast = _offload(tmp_path / "cast", {"layers.0.norm": t["model.norm.weight"].float()})
    assert offload_copies(_fixture(tmp_path), cast) == []


def test_only_transformers_own_disk_loads_are_held_to_it(tmp_path: Path) -> None:
    """accelerate's disk_offload copies every weight by design (its .dat files); the judge asks it of transformers'
    device_map loads only, and an offload folder that was never written is no finding."""
    fixture_dir = _fixture(tmp_path)
    folder = _offload(tmp_path, {"layers.0.norm": base_tensors()["model.norm.weight"]})
    save = write(tmp_path / "save", base_tensors())
    baseline = Execution(save, "", 1.0)
    run = Execution(save, "", 1.0, offload_dir=folder)
    spec = DEFAULT_FIXTURES[0]
    failed = judge(Cell(spec, by_name("disk-partial"), "upstream"), run, baseline, Grade.BYTES, fixture_dir=fixture_dir)
    assert (failed.outcome, failed.classes) == (Outcome.FAIL, ("offload-copy",))
    for mode in ("accelerate-disk", "dispatch-disk-full+offload_buffers"):
        cell = Cell(spec, by_name(mode), "upstream")
        assert judge(cell, run, baseline, Grade.BYTES, fixture_dir=fixture_dir).outcome is Outcome.PASS
    empty = Execution(save, "", 1.0, offload_dir=tmp_path / "never-written")
    cell = Cell(spec, by_name("disk-full"), "upstream")
    assert judge(cell, empty, baseline, Grade.BYTES, fixture_dir=fixture_dir).outcome is Outcome.PASS


def test_load_and_save_dtypes_are_checked_and_absent_from_other_fixtures_keys() -> None:
    plain = FixtureSpec(name="x", architecture="llama")
    assert "load_dtype" not in plain.to_json()  # the cache keys of every fixture without one stay as they were
    assert plain.loaded_dtype == "bfloat16"
    assert FixtureSpec.from_json(plain.to_json()) == plain
    cast = fixture("qwen3_moe_as_float32")
    assert (cast.dtype, cast.loaded_dtype) == ("bfloat16", "float32")
    assert FixtureSpec.from_json(cast.to_json()) == cast
    with pytest.raises(SpecError, match="load_dtype 'float64' is not one of"):
        FixtureSpec(name="x", architecture="llama", load_dtype="float64")
    assert "save_dtype" not in plain.to_json()
    back = fixture("qwen3_moe_cast_back")
    assert (back.loaded_dtype, back.save_dtype) == ("float32", "bfloat16")
    assert FixtureSpec.from_json(back.to_json()) == back
    with pytest.raises(SpecError, match="save_dtype 'int8' is not one of"):
        FixtureSpec(name="x", architecture="llama", save_dtype="int8")


def test_a_bin_checkpoint_is_listed_and_never_read_in_place(tmp_path: Path) -> None:
    """pytorch_model.bin: its manifest lists its tensors as a safetensors one's would, and no offload of it is a copy
    (transformers cannot point its offload index into a .bin)."""
    t = base_tensors()
    directory = tmp_path / "bin"
    directory.mkdir()
    torch.save(t, directory / "pytorch_model.bin")
    write_manifest(directory, DEFAULT_FIXTURES[0], frozenset(), "digest")
    listed = read_manifest(directory)["tensors"]
    assert set(listed) == set(t) and listed["model.norm.weight"]["dtype"] == "bfloat16"  # type: ignore[index]
    assert listed["model.norm.weight"] == read_manifest(_fixture(tmp_path))["tensors"]["model.norm.weight"] | {  # type: ignore[index]
        "file": "pytorch_model.bin"
    }
    assert offload_copies(directory, _offload(tmp_path, {"layers.0.norm": t["model.norm.weight"]})) == []
    with pytest.raises(SpecError, match="a bin checkpoint is written as one file"):
        FixtureSpec(name="x", architecture="llama", weights_format="bin", shard_size="24KB")
    with pytest.raises(SpecError, match="weights_format 'gguf' is not one of safetensors, bin"):
        FixtureSpec(name="x", architecture="llama", weights_format="gguf")


def test_read_safetensors_hashes_only_the_entries_its_predicate_selects(tmp_path: Path) -> None:
    """offload-copy hashes an offload file's tensors of a checkpoint tensor's shape only (fused experts are not)."""
    from offload_conformance.harness.judge.checkpoint import read_safetensors

    save_file({"a": torch.ones(2, 3), "b": torch.ones(4)}, tmp_path / "f.safetensors")
    every = {t.name: t.sha256 for t in read_safetensors(tmp_path / "f.safetensors").tensors}
    chosen = {t.name: t.sha256 for t in read_safetensors(tmp_path / "f.safetensors", lambda t: t.shape == (4,)).tensors}
    assert chosen == {"a": "", "b": every["b"]} and every["a"] and every["b"] != every["a"]
    assert {t.sha256 for t in read_safetensors(tmp_path / "f.safetensors", digests=False).tensors} == {""}
