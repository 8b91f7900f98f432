"""Damage the fuzz (`offload-conformance fuzz --damage`) found the reference's preflight letting through: an index
entry reading another tensor's bytes, and an offload file the saving user cannot read."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.tools.damage.child import in_child
from offload_conformance.harness.tools.damage.storage import indexes
from offload_conformance.reference_impl import OffloadError, save_pretrained


def _disk_full(name: str, tmp: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    src = tmp / "src"  # a copy: the storage of a disk-offloaded llama is its checkpoint, damaged below
    shutil.copytree(generate(by_name(name)), src)
    return AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=str(tmp / "off")
    )


def test_an_entry_reading_another_tensors_bytes_is_refused(tmp_path: Path) -> None:
    """Same shape, same dtype: only the index tells that up_proj now reads gate_proj's bytes (the fuzz's index-name
    kind wrote gate_proj's values under up_proj's name, a `permuted` checkpoint, before the check)."""
    model = _disk_full("llama", tmp_path)
    (index,) = indexes(model)
    index["model.layers.0.mlp.up_proj.weight"]["weight_name"] = "model.layers.0.mlp.gate_proj.weight"
    with pytest.raises(OffloadError, match=r"index reads 'model.layers.0.mlp.gate_proj.weight' of .*model.safetensors"):
        save_pretrained(model, tmp_path / "saved")
    assert not (tmp_path / "saved").exists()


def test_tied_weights_reading_one_storage_are_not_an_alias(tmp_path: Path) -> None:
    """transformers' index gives the tied lm_head.weight an entry reading model.embed_tokens.weight: one storage, one
    tensor. The save leaves the tied name out; preflight over the whole state dict meets it."""
    from transformers import AutoModelForCausalLM

    from offload_conformance.reference_impl.preflight import preflight

    model = _disk_full("qwen3_moe_tied", tmp_path)
    (index,) = indexes(model)
    assert index["lm_head.weight"]["weight_name"] == "model.embed_tokens.weight"
    preflight(model)
    save_pretrained(model, tmp_path / "saved")
    AutoModelForCausalLM.from_pretrained(tmp_path / "src", dtype=torch.bfloat16).save_pretrained(tmp_path / "expected")
    assert compare(tmp_path / "expected", tmp_path / "saved").classes == ()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to save as another user")
def test_an_unreadable_offload_file_is_named(request: pytest.FixtureRequest) -> None:
    """Saved as an unprivileged user (root reads a chmod 000 file): without the check the save failed while writing,
    with 'writing .../saved failed (Permission denied)', which names the target, not the file."""
    from offload_conformance.harness.tools.damage.child import drop_privileges

    tmp_path = Path(tempfile.mkdtemp(prefix="dmg-unreadable-"))  # pytest's own is 0700: the other user cannot enter
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    tmp_path.chmod(0o777)
    model = _disk_full("qwen3_moe", tmp_path)
    for p in tmp_path.rglob("*"):
        p.chmod(0o777 if p.is_dir() else 0o644)
    damaged = tmp_path / "off" / "model.layers.1.mlp.experts.down_proj.safetensors"
    damaged.chmod(0)

    def save() -> dict[str, str]:
        drop_privileges()
        try:
            save_pretrained(model, tmp_path / "saved")
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
        return {"error": "", "message": "saved"}

    result = in_child(save, timeout=120)
    assert result["error"] == "OffloadError", result
    assert f"{damaged} cannot be read (permission denied)" in result["message"], result


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to save as another user")
def test_a_target_below_a_directory_the_user_cannot_search_is_one_line(tmp_path: Path) -> None:
    """Path.exists raises on a parent without search permission; that is bad input, not a traceback."""
    from offload_conformance.harness.tools.damage.child import drop_privileges

    model = _disk_full("llama", tmp_path)

    def save() -> dict[str, str]:
        drop_privileges()
        try:
            save_pretrained(model, tmp_path / "saved")  # pytest's tmp_path is below a 0700 directory
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
        return {"error": "", "message": "saved"}

    result = in_child(save, timeout=120)
    assert result["error"] == "SaveError" and "Permission denied" in result["message"], result


def test_an_offloaded_file_in_another_dtype_of_the_same_size_is_cast(tmp_path: Path) -> None:
    """An offload entry pointing at a float16 file while the model holds bfloat16 (both 2 bytes an element): accelerate
    casts on read, so the model holds the cast values. Before the check the reference copied the file's float16 bytes
    as they were, labelled BF16 (the fuzz's header-dtype kind: 'identical' where upstream wrote what the model reads).
    The test_reliability twin covers float32, whose size alone already told the bytes apart."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    model = _disk_full("qwen3_moe", tmp_path)
    fused = "model.layers.0.mlp.experts.gate_up_proj"
    (index,) = indexes(model)
    stored = Path(index[fused]["safetensors_file"])
    half = {k: v.to(torch.float16) for k, v in load_file(stored).items()}
    assert all(torch.equal(v.to(torch.bfloat16), load_file(stored)[k]) for k, v in half.items())  # exact both ways
    stored.unlink()
    save_file(half, stored)
    save_pretrained(model, tmp_path / "saved")
    AutoModelForCausalLM.from_pretrained(tmp_path / "src", dtype=torch.bfloat16).save_pretrained(tmp_path / "expected")
    assert compare(tmp_path / "expected", tmp_path / "saved").classes == ()


def test_an_offloaded_file_in_an_integer_dtype_for_a_float_tensor_is_refused(tmp_path: Path) -> None:
    """The entry's dtype casts a float stored in another float width; a header saying I16 for a bfloat16 tensor (the
    fuzz's header-dtype kind, bytes unchanged) is damage: cast, it wrote garbage values with no error."""
    import json
    import struct

    model = _disk_full("qwen3_moe", tmp_path)
    fused = "model.layers.0.mlp.experts.gate_up_proj"
    (index,) = indexes(model)
    stored = Path(index[fused]["safetensors_file"])
    data = stored.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header[fused]["dtype"] = "I16"
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    stored.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    with pytest.raises(OffloadError, match=r"holds I16\[4, 64, 64\], the model holds torch.bfloat16\[4, 64, 64\]"):
        save_pretrained(model, tmp_path / "saved")


def test_an_accelerate_dat_entry_with_another_dtype_is_refused(tmp_path: Path) -> None:
    """accelerate's disk_offload maps `<key>.dat` as its index entry's dtype: an entry changed to float16 reads the
    bf16 bytes as float16. The reference copied the bytes as they were (a right checkpoint from a model that reads
    wrong values); like a safetensors entry, it is refused."""
    from transformers import AutoModelForCausalLM

    from offload_conformance.harness.plan.modes import by_name as mode

    model = AutoModelForCausalLM.from_pretrained(generate(by_name("qwen3_moe")), dtype=torch.bfloat16)
    mode("accelerate-disk+offload_buffers").after_load(model, tmp_path / "off")
    (index,) = indexes(model)
    index["model.layers.0.self_attn.o_proj.weight"]["dtype"] = "float16"
    with pytest.raises(OffloadError, match=r"index says dtype float16, the model holds torch\.bfloat16"):
        save_pretrained(model, tmp_path / "saved")


@pytest.mark.parametrize("to", ["dangling", "outside"])
def test_a_symlinked_accelerate_dat_file_is_named_by_its_own_name(tmp_path: Path, to: str) -> None:
    """A `.dat` replaced by a symlink (to nothing, or to a copy outside the folder): the message named only the link's
    target (`.../no-such-file is missing`) or the index key, never the file that was damaged (fuzz --damage --seed 2:
    two `crash` verdicts)."""
    from transformers import AutoModelForCausalLM

    from offload_conformance.harness.plan.modes import by_name as mode

    model = AutoModelForCausalLM.from_pretrained(generate(by_name("qwen3_moe")), dtype=torch.bfloat16)
    mode("accelerate-disk+offload_buffers").after_load(model, tmp_path / "off")
    dat = tmp_path / "off" / "model.layers.0.post_attention_layernorm.weight.dat"
    target = tmp_path / "no-such-file" if to == "dangling" else tmp_path / "copy.dat"
    if to == "outside":
        shutil.copyfile(dat, target)
    dat.unlink()
    dat.symlink_to(target)
    with pytest.raises(OffloadError) as e:
        save_pretrained(model, tmp_path / "saved")
    assert str(dat) in str(e.value), e.value


def test_an_accelerate_dat_entry_of_another_width_is_cast_on_read(tmp_path: Path) -> None:
    """The counterpart of the refusal above: accelerate's load_checkpoint_and_dispatch(dtype=torch.float32) of a bf16
    checkpoint offloads each weight as the checkpoint stores it (index dtype bfloat16, a bf16-sized `.dat`) and its
    hooks cast every read to float32. The reference saves what the same checkpoint loaded in memory in float32 saves
    (it refused: 'index says dtype bfloat16, the model holds torch.float32')."""
    from accelerate import init_empty_weights, load_checkpoint_and_dispatch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    src = generate(by_name("llama"))
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src), dtype=torch.float32)
    model.tie_weights()
    model = load_checkpoint_and_dispatch(
        model, str(src), device_map={"": "disk"}, offload_folder=str(tmp_path / "off"), dtype=torch.float32
    )
    (index,) = indexes(model)
    assert {e["dtype"] for e in index.values()} == {"bfloat16"}  # stored as the checkpoint holds it
    save_pretrained(model, tmp_path / "saved")
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).save_pretrained(tmp_path / "in-memory")
    saved, expected = (
        load_file(tmp_path / "saved" / "model.safetensors"),
        load_file(tmp_path / "in-memory" / "model.safetensors"),
    )
    assert saved.keys() == expected.keys()
    assert all(saved[k].dtype == torch.float32 and torch.equal(saved[k], expected[k]) for k in expected)
