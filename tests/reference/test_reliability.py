"""Bad input gets one line naming the problem, and nothing the user had is lost."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import resource
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.reference_impl import OffloadError, SaveError, save_pretrained

QWEN = by_name("qwen3_moe")
FUSED = "model.layers.0.mlp.experts.gate_up_proj"


def _load(offload: Path, placement: str = "disk-full+offload_buffers") -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    m = mode(placement)
    model = AutoModelForCausalLM.from_pretrained(generate(QWEN), dtype=torch.bfloat16, **m.load_kwargs(None, offload))  # type: ignore[arg-type]
    m.after_load(model, offload)
    return model


def _digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
    }


def _index(model: torch.nn.Module) -> dict:
    hook = next(m._hf_hook for m in model.modules() if getattr(getattr(m, "_hf_hook", None), "weights_map", None))
    return hook.weights_map.dataset.index


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:-100])


def _bad_length(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[:8] = struct.pack("<Q", 2**40)
    p.write_bytes(bytes(data))


def _not_json(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[8:12] = b"#!x%"
    p.write_bytes(bytes(data))


def _overlapping(p: Path) -> None:
    header = json.dumps(
        {
            FUSED: {"dtype": "BF16", "shape": [4, 64, 64], "data_offsets": [0, 32768]},
            "other": {"dtype": "BF16", "shape": [2], "data_offsets": [100, 104]},
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    p.write_bytes(struct.pack("<Q", len(header)) + header + bytes(32768))


# (case, damage done to the offload folder / index, what the one-line error must say)
DAMAGE: list[tuple[str, Callable[[Path, dict], None], str]] = [
    ("missing-file", lambda off, idx: (off / f"{FUSED}.safetensors").unlink(), "is missing"),
    ("truncated", lambda off, idx: _truncate(off / f"{FUSED}.safetensors"), "not a valid safetensors file"),
    ("bad-header-length", lambda off, idx: _bad_length(off / f"{FUSED}.safetensors"), "not a valid safetensors"),
    ("header-not-json", lambda off, idx: _not_json(off / f"{FUSED}.safetensors"), "not a valid safetensors file"),
    ("overlapping-offsets", lambda off, idx: _overlapping(off / f"{FUSED}.safetensors"), "not a valid safetensors"),
    (
        "index-escapes-dotdot",
        lambda off, idx: idx[FUSED].update(safetensors_file=str(off / ".." / "x.safetensors")),
        "points outside the offload folder",
    ),
    (
        "index-escapes-absolute",
        lambda off, idx: idx[FUSED].update(safetensors_file="/etc/hostname"),
        "points outside the offload folder",
    ),
    ("index-wrong-dtype", lambda off, idx: idx[FUSED].update(dtype="float32"), "index says dtype float32"),
    (
        "data-wrong-shape",
        lambda off, idx: save_file({FUSED: torch.zeros(2, 2, dtype=torch.bfloat16)}, off / f"{FUSED}.safetensors"),
        "the model holds",
    ),
    ("empty-folder", lambda off, idx: [p.unlink() for p in off.iterdir()], "is missing"),
]


@pytest.fixture
def saved_before(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A target that already holds a complete earlier save, plus a file of the user's."""
    target = tmp_path / "target"
    save_pretrained(_load(tmp_path / "first-offload"), target)
    (target / "tokenizer.json").write_text("{}")
    return target, _digest(target)


@pytest.mark.parametrize(("case", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_offload_folder_is_one_line_and_target_untouched(
    tmp_path: Path,
    saved_before: tuple[Path, dict[str, str]],
    case: str,
    damage: Callable[[Path, dict], None],
    message: str,
) -> None:
    target, before = saved_before
    offload = tmp_path / "offload"
    model = _load(offload)
    damage(offload, _index(model))
    with pytest.raises(OffloadError) as e:
        save_pretrained(model, target)
    text = str(e.value)
    assert message in text and "\n" not in text, text
    assert _digest(target) == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".target")]  # no staging left


def test_truncated_accelerate_dat_file(tmp_path: Path, saved_before: tuple[Path, dict[str, str]]) -> None:
    target, before = saved_before
    model = _load(tmp_path / "offload", "accelerate-disk+offload_buffers")
    dat = tmp_path / "offload" / f"{FUSED}.dat"
    dat.write_bytes(dat.read_bytes()[:10])
    with pytest.raises(OffloadError, match="truncated"):
        save_pretrained(model, target)
    assert _digest(target) == before


def test_target_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("keep")
    with pytest.raises(SaveError, match="is a file"):
        save_pretrained(_load(tmp_path / "off"), target)
    assert target.read_text() == "keep"


def test_target_not_writable(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="cannot write beside") as e:
        save_pretrained(_load(tmp_path / "off"), Path("/proc/self/offload-conformance-target"))
    assert "\n" not in str(e.value)


def _save_with_fsize_limit(model: torch.nn.Module, target: str, limit: int, queue: multiprocessing.Queue) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a disk that fills up at `limit` bytes a file
    try:
        save_pretrained(model, target)
        queue.put("saved")
    except SaveError as e:
        queue.put(f"SaveError: {e}")


def test_full_disk_leaves_the_target_as_it_was(tmp_path: Path, saved_before: tuple[Path, dict[str, str]]) -> None:
    target, before = saved_before
    model = _load(tmp_path / "offload")
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(
        target=_save_with_fsize_limit, args=(model, str(target), 50_000, queue)
    )
    proc.start()
    proc.join(120)
    outcome = queue.get(timeout=5)
    assert outcome.startswith("SaveError: writing") and "target is unchanged" in outcome, outcome
    assert _digest(target) == before


def test_stale_shards_go_other_files_stay_as_in_memory(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = _load(tmp_path / "off")
    in_memory = AutoModelForCausalLM.from_pretrained(generate(QWEN), dtype=torch.bfloat16)
    dirs = []
    for label, saver in (
        ("upstream", lambda d: in_memory.save_pretrained(d, max_shard_size="24KB")),
        ("reference", lambda d: save_pretrained(model, d, max_shard_size="24KB")),
    ):
        d = tmp_path / label
        in_memory.save_pretrained(d, max_shard_size="8KB")  # an earlier save with many more shards
        (d / "tokenizer.json").write_text("{}")
        saver(d)
        dirs.append(d)
    assert sorted(p.name for p in dirs[0].iterdir()) == sorted(p.name for p in dirs[1].iterdir())
    assert compare(dirs[0], dirs[1]).grade == "bytes"


def test_no_pickle_anywhere() -> None:
    """Only safetensors is ever read for weights: no pickle-based loading in the product code."""
    root = Path(__file__).resolve().parent.parent
    banned = ("torch.load(", "pickle.load", "pickle.loads", "weights_only=False", "numpy.load(", "np.load(")
    for package in ("harness", "fixtures", "reference_impl"):
        for source in (root / package).rglob("*.py"):
            text = source.read_text()
            assert not [b for b in banned if b in text], source


def test_relative_offload_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """accelerate keeps a relative offload path relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    model = _load(Path("relative-offload"))
    save_pretrained(model, "saved")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(generate(QWEN), dtype=torch.bfloat16).save_pretrained("expected")
    assert compare(tmp_path / "expected", tmp_path / "saved").grade == "bytes"


def test_symlinked_target_keeps_its_link(tmp_path: Path, saved_before: tuple[Path, dict[str, str]]) -> None:
    target, _ = saved_before
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    save_pretrained(_load(tmp_path / "offload"), link, max_shard_size="24KB")
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (target / "model.safetensors.index.json").exists() and (target / "tokenizer.json").exists()


def test_every_file_and_the_directory_are_fsynced_before_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from offload_conformance.reference_impl import atomic, save

    synced: set[int] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    unsynced: list[str] = []
    real_replace = atomic.replace_directory

    def replace(staging: Path, target: Path, keep: list[str]) -> None:
        # the directory's own fsync happens inside replace_directory, before the exchange
        unsynced.extend(p.name for p in staging.iterdir() if p.stat().st_ino not in synced)
        directory = staging.stat().st_ino
        real_replace(staging, target, keep)
        if directory not in synced:
            unsynced.append("the directory itself")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(save, "replace_directory", replace)
    save_pretrained(_load(tmp_path / "offload"), tmp_path / "target", max_shard_size="24KB")
    assert unsynced == []
    assert len(list((tmp_path / "target").glob("*.safetensors"))) > 1


@pytest.mark.parametrize("shards", [None, "24KB"])
def test_direct_save_writes_the_in_memory_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: str | None
) -> None:
    """Shards made of byte ranges only go past the page cache (two 8 KiB buffers here, below the
    fixture's largest tensor of 32 KiB); the checkpoint is the in-memory save's, byte for byte."""
    from transformers import AutoModelForCausalLM

    from offload_conformance.reference_impl import save as save_module
    from offload_conformance.reference_impl.writer import StreamingWriter

    monkeypatch.setattr(save_module, "DIRECT_CHUNK", 8192)
    direct: list[bool] = []
    real_close = StreamingWriter.close

    def close(self: StreamingWriter) -> None:
        if not self.closed:
            direct.append(self.direct)
        real_close(self)

    monkeypatch.setattr(StreamingWriter, "close", close)
    options = {"max_shard_size": shards} if shards else {}
    save_pretrained(_load(tmp_path / "offload"), tmp_path / "saved", **options)
    AutoModelForCausalLM.from_pretrained(generate(QWEN), dtype=torch.bfloat16).save_pretrained(
        tmp_path / "expected", **options
    )
    assert compare(tmp_path / "expected", tmp_path / "saved").grade == "bytes"
    if not any(direct):
        pytest.skip("this filesystem has no O_DIRECT")
    assert all(direct) and len(direct) == len(list((tmp_path / "saved").glob("*.safetensors")))


def test_offloaded_file_in_another_dtype_is_cast_to_the_index_dtype(tmp_path: Path) -> None:
    """transformers 5.15-5.17 point offload entries into a source checkpoint that stores a tensor in fp32 while the
    model holds bf16; accelerate's loader casts to the entry's dtype on read, and so the save must accept it."""
    from safetensors.torch import load_file

    expected = tmp_path / "in-memory"
    _load(tmp_path / "unused", "in-memory").save_pretrained(expected)
    offload = tmp_path / "offload"
    model = _load(offload)
    entry = _index(model)[FUSED]
    assert entry["dtype"] == "bfloat16"
    stored = Path(entry["safetensors_file"])
    upcast = {k: v.float() for k, v in load_file(stored).items()}  # bf16 -> fp32 is exact
    stored.unlink()  # the entry may be a link into somewhere else: write a file of our own
    save_file(upcast, stored)
    save_pretrained(model, tmp_path / "saved")
    assert compare(expected, tmp_path / "saved").classes == ()
