"""StreamingWriter / header_bytes against safetensors.torch.save_file, byte for byte."""

from __future__ import annotations

import json
import os
import random
import re
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save, save_file

from offload_conformance.reference_impl.writer import (
    SUPPORTED_DTYPES,
    StreamingWriter,
    TensorPlan,
    dtype_code,
    header_bytes,
)

F4 = torch.float4_e2m1fn_x2
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def make_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A tensor of `dtype`/`shape` filled with arbitrary bytes (0/1 for bool)."""
    numel = int(np.prod(shape, dtype=np.int64))
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = np.random.default_rng(seed).integers(0, 256, numel * dtype.itemsize, dtype=np.uint8)
    if dtype == torch.bool:
        raw &= 1
    return torch.from_numpy(raw).view(dtype).reshape(shape)


def header_json(data: bytes) -> list[tuple[str, dict[str, object]]]:
    """The header's top-level (key, value) pairs, in file order, duplicate keys kept."""
    (n,) = struct.unpack("<Q", data[:8])
    return [(k, dict(v)) for k, v in json.loads(data[8 : 8 + n], object_pairs_hook=list)]


def metadata_in_file_order(data: bytes, metadata: dict[str, str] | None) -> dict[str, str] | None:
    """`metadata` re-ordered as save_file happened to write it (its order is random upstream)."""
    if not metadata:
        return metadata
    written = dict(header_json(data))["__metadata__"]
    return {k: metadata[k] for k in written}


def stream(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None, order: list[str]) -> None:
    plan = [TensorPlan(name, t.dtype, tuple(t.shape)) for name, t in tensors.items()]
    with StreamingWriter(path, plan, metadata) as writer:
        for name in order:
            writer.write(name, tensors[name])


def no_leftovers(directory: Path, *expected: str) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(expected)


# --- hypothesis: arbitrary tensor sets, shuffled write order ---------------------------------

names = st.one_of(
    st.text(NAME_ALPHABET, min_size=1, max_size=24),
    st.lists(
        st.sampled_from(["model", "layers", "0", "1", "10", "2", "mlp", "experts", "weight", "Bias"]), min_size=1
    ).map(".".join),
    st.text(min_size=1, max_size=8),  # any unicode (no surrogates): exercises JSON escaping
)
dims = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)


@st.composite
def tensor_sets(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    keys = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        dtype = draw(st.sampled_from(SUPPORTED_DTYPES))
        shape = draw(dims.filter(lambda s: len(s) > 0) if dtype == F4 else dims)
        out[key] = make_tensor(dtype, shape, draw(st.integers(0, 2**32 - 1)))
    return out


metadatas = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=4),
    st.just({"format": "pt"}),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors=tensor_sets(), metadata=metadatas, data=st.data())
def test_streaming_matches_save_file(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None, data: st.DataObject
) -> None:
    order = data.draw(st.permutations(list(tensors)))
    with tempfile.TemporaryDirectory() as d:
        ref_path, out_path = Path(d, "ref.safetensors"), Path(d, "out.safetensors")
        save_file(tensors, ref_path, metadata=metadata)
        ref = ref_path.read_bytes()
        md = metadata_in_file_order(ref, metadata)
        stream(out_path, tensors, md, order)
        assert out_path.read_bytes() == ref
        prefix, offsets = header_bytes([TensorPlan(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()], md)
        assert ref.startswith(prefix) and len(prefix) % 8 == 0
        assert len(ref) == len(prefix) + max(e for _, e in offsets.values())
        no_leftovers(Path(d), "ref.safetensors", "out.safetensors")


# --- the layout rules, pinned as examples ---------------------------------------------------

# Descending rank of the Rust Dtype enum; not element size (BF16 before F16, F32 before U32 ...).
EXPECTED_DTYPE_ORDER = [
    "U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16",
    "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F8_E8M0", "F8_E4M3", "F8_E5M2", "I8", "U8", "F4", "BOOL",
]  # fmt: skip


def test_dtype_order_is_enum_rank_not_name_or_size() -> None:
    # Names ascend in the *reverse* of the expected order, so only the dtype can explain it.
    tensors = {f"t{i:02d}": make_tensor(dt, (2,), i) for i, dt in enumerate(SUPPORTED_DTYPES)}
    data = save(tensors)
    assert [v["dtype"] for _, v in header_json(data)] == EXPECTED_DTYPE_ORDER
    prefix, _ = header_bytes([TensorPlan(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()], None)
    assert data.startswith(prefix)


def test_names_break_ties_bytewise() -> None:
    keys = ["a", "B", "b", "A", "a.10", "a.9", "a.1", "a.01", "aa", "a_", "a-", "Z", "_", "é", "ß", "日本", "😀", "~"]
    tensors = {k: torch.zeros(1) for k in keys}
    written = [k for k, _ in header_json(save(tensors))]
    assert written == sorted(keys, key=lambda s: s.encode("utf-8"))
    # ... and the dtype outranks the name: bool "a" goes after f32 "b".
    mixed = {"a": torch.zeros(1, dtype=torch.bool), "b": torch.zeros(1), "c": torch.zeros(1, dtype=torch.int64)}
    assert [k for k, _ in header_json(save(mixed))] == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("tensors", "metadata", "header"),
    [
        ({}, None, b"{}"),
        ({}, {"a": "b"}, b'{"__metadata__":{"a":"b"}}'),
        # upstream quirk: length hint 0, so serde_json emits "{}" first -> a file safetensors can't load
        ({}, {}, b'{},"__metadata__":{}}'),
        ({"x": torch.zeros(1)}, {}, b'{"__metadata__":{},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
        ({"s": torch.tensor(3.0)}, None, b'{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}'),
        ({"e": torch.zeros(0, 3, dtype=torch.float16)}, None,
         b'{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0]}}'),
        ({"f": torch.zeros(0, 2, dtype=torch.uint8).view(F4)}, None,
         b'{"f":{"dtype":"F4","shape":[0,4],"data_offsets":[0,0]}}'),
        ({"q\"\\\n\x00\x7f/é": torch.zeros(1, dtype=torch.int8)}, {"\x08": "\u2028"},
         b'{"__metadata__":{"\\b":"\xe2\x80\xa8"},"q\\"\\\\\\n\\u0000\x7f/\xc3\xa9":{"dtype":"I8","shape":[1],'
         b'"data_offsets":[0,1]}}'),
    ],
)  # fmt: skip
def test_exact_headers(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None, header: bytes) -> None:
    """`header` is the unpadded JSON; the spaces are added here (the rule has its own test)."""
    padded = header + b" " * (-len(header) % 8)
    data = save(tensors, metadata=metadata)
    expected = struct.pack("<Q", len(padded)) + padded
    assert data[: len(expected)] == expected  # pins save_file itself
    prefix, _ = header_bytes([TensorPlan(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()], metadata)
    assert prefix == expected


def test_header_is_padded_with_spaces_to_a_multiple_of_8() -> None:
    for n in range(1, 17):
        tensors = {"x" * n: torch.zeros(1)}
        data = save(tensors)
        prefix, _ = header_bytes([TensorPlan("x" * n, torch.float32, (1,))], None)
        assert data.startswith(prefix)
        (length,) = struct.unpack("<Q", prefix[:8])
        assert length % 8 == 0 and length == len(prefix) - 8
        assert prefix.rstrip(b" ").endswith(b"}") and len(prefix) - len(prefix.rstrip(b" ")) < 8


def test_non_contiguous_input_is_written_like_its_contiguous_copy(tmp_path: Path) -> None:
    t = make_tensor(torch.bfloat16, (3, 5), 7).t()
    assert not t.is_contiguous()
    save_file({"w": t.contiguous()}, tmp_path / "ref.safetensors")
    stream(tmp_path / "out.safetensors", {"w": t}, None, ["w"])
    assert (tmp_path / "out.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_streamed_file_loads_back(tmp_path: Path) -> None:
    tensors = {"b": make_tensor(torch.bfloat16, (4, 3), 1), "i": make_tensor(torch.int64, (), 2)}
    stream(tmp_path / "m.safetensors", tensors, {"format": "pt"}, ["i", "b"])
    loaded = load_file(tmp_path / "m.safetensors")
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_unsupported_dtypes_are_rejected_like_save_file(tmp_path: Path) -> None:
    for dtype in (torch.complex128, torch.int4):
        with pytest.raises(KeyError):
            save_file({"x": torch.zeros(2, dtype=dtype)}, tmp_path / "ref.safetensors")
        with pytest.raises(ValueError, match=str(dtype)):
            header_bytes([TensorPlan("x", dtype, (2,))], None)
        with pytest.raises(ValueError):
            dtype_code(dtype)
    scalar_f4 = torch.zeros((), dtype=torch.uint8).view(F4)
    with pytest.raises(Exception, match="byte boundary"):
        save_file({"x": scalar_f4}, tmp_path / "ref.safetensors")
    with pytest.raises(ValueError, match="'x'"):
        header_bytes([TensorPlan("x", F4, ())], None)
    no_leftovers(tmp_path)


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="'a'"):
        header_bytes([TensorPlan("a", torch.float32, (1,)), TensorPlan("a", torch.int8, (2,))], None)
    with pytest.raises(ValueError, match="'a'"):
        header_bytes([TensorPlan("a", torch.float32, (-1,))], None)
    with pytest.raises(ValueError, match="metadata"):
        header_bytes([], {"k": 1})  # type: ignore[dict-item]


# --- failures: clear errors, nothing left behind, the target untouched ----------------------

PLAN = [TensorPlan("model.w", torch.float32, (2, 3)), TensorPlan("model.b", torch.bfloat16, (3,))]
GOOD = {"model.w": make_tensor(torch.float32, (2, 3), 1), "model.b": make_tensor(torch.bfloat16, (3,), 2)}


def _wrong_dtype(w: StreamingWriter) -> None:
    w.write("model.w", GOOD["model.w"].double())


def _wrong_shape(w: StreamingWriter) -> None:
    w.write("model.w", GOOD["model.w"].reshape(3, 2))


def _unknown_name(w: StreamingWriter) -> None:
    w.write("model.nope", GOOD["model.w"])


def _duplicate(w: StreamingWriter) -> None:
    w.write("model.b", GOOD["model.b"])
    w.write("model.b", GOOD["model.b"])


def _missing(w: StreamingWriter) -> None:
    w.write("model.b", GOOD["model.b"])  # model.w never written; close() must refuse


@pytest.mark.parametrize(
    ("action", "name"),
    [
        (_wrong_dtype, "model.w"),
        (_wrong_shape, "model.w"),
        (_unknown_name, "model.nope"),
        (_duplicate, "model.b"),
        (_missing, "model.w"),
    ],
)
@pytest.mark.parametrize("preexisting", [False, True])
def test_failures_leave_no_file(
    tmp_path: Path, action: Callable[[StreamingWriter], None], name: str, preexisting: bool
) -> None:
    target = tmp_path / "model.safetensors"
    if preexisting:
        target.write_bytes(b"previous contents")
    with pytest.raises(ValueError, match=re.escape(f"'{name}'")), StreamingWriter(target, PLAN, None) as writer:
        action(writer)
    if preexisting:
        assert target.read_bytes() == b"previous contents"
        no_leftovers(tmp_path, target.name)
    else:
        assert not target.exists()
        no_leftovers(tmp_path)


def test_other_exceptions_abort_too(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    with pytest.raises(RuntimeError, match="boom"), StreamingWriter(target, PLAN, None) as writer:
        writer.write("model.w", GOOD["model.w"])
        raise RuntimeError("boom")
    no_leftovers(tmp_path)


def test_rejected_write_leaves_writer_usable(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    with StreamingWriter(target, PLAN, {"k": "v"}) as writer:
        with pytest.raises(ValueError, match=re.escape("'model.w'")):
            writer.write("model.w", GOOD["model.w"].half())
        assert writer.missing == ["model.w", "model.b"]
        for key in random.Random(0).sample(list(GOOD), len(GOOD)):
            writer.write(key, GOOD[key])
    save_file(GOOD, tmp_path / "ref.safetensors", metadata={"k": "v"})
    assert target.read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
    with pytest.raises(ValueError, match="closed"):
        writer.write("model.w", GOOD["model.w"])


def test_success_replaces_existing_file_with_save_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    save_file(GOOD, tmp_path / "ref.safetensors")
    stream(target, GOOD, None, ["model.b", "model.w"])
    assert target.read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
    assert os.stat(target).st_mode & 0o777 == os.stat(tmp_path / "ref.safetensors").st_mode & 0o777
    no_leftovers(tmp_path, "model.safetensors", "ref.safetensors")


# --- write_parts: a tensor's bytes as runs in files (copied in the kernel) and in memory ----------


@pytest.mark.parametrize("method", ["copy_file_range", "sendfile", "pread/pwrite"])
def test_write_parts_from_file_ranges_and_memory_matches_save_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from offload_conformance.reference_impl import transfer
    from offload_conformance.reference_impl.writer import FileRange

    refused = {"copy_file_range": 0, "sendfile": 1, "pread/pwrite": 2}[method]
    if refused:  # as a kernel or filesystem that refuses the faster ways would (EXDEV, EINVAL)
        for m in transfer._METHODS[:refused]:
            monkeypatch.setattr(transfer, m.__name__, _refuse)
        monkeypatch.setattr(transfer, "_METHODS", tuple(getattr(transfer, m.__name__) for m in transfer._METHODS))
    tensors = {"a": make_tensor(torch.bfloat16, (64, 48), 1), "b": make_tensor(torch.float32, (33,), 2)}
    source = tmp_path / "source.bin"
    a = bytes(tensors["a"].contiguous().view(torch.uint8).reshape(-1).numpy())
    source.write_bytes(b"header" + a[1000:] + b"gap" + a[:1000])
    fd = os.open(source, os.O_RDONLY)
    try:
        plan = [TensorPlan(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
        with StreamingWriter(tmp_path / "out.safetensors", plan, {"format": "pt"}) as writer:
            b = memoryview(tensors["b"].numpy()).cast("B")
            writer.write_parts("b", [b[:5], b[5:]])
            tail = len(a) - 1000
            writer.write_parts("a", [FileRange(fd, 6 + tail + 3, 1000), FileRange(fd, 6, tail)])
    finally:
        os.close(fd)
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "out.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def _refuse(*args: object) -> int:
    raise OSError(18, "Invalid cross-device link")  # EXDEV


def test_write_parts_checks_the_length_and_a_short_source(tmp_path: Path) -> None:
    from offload_conformance.reference_impl.writer import FileRange

    plan = [TensorPlan("a", torch.float32, (4,))]
    with pytest.raises(ValueError, match="has 12 bytes, expected 16"), StreamingWriter(tmp_path / "x", plan) as w:
        w.write_parts("a", [memoryview(bytes(12))])
    source = tmp_path / "short.bin"
    source.write_bytes(bytes(10))
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(EOFError, match="6 bytes early"), StreamingWriter(tmp_path / "y", plan) as w:
            w.write_parts("a", [FileRange(fd, 0, 16)])
    finally:
        os.close(fd)
    no_leftovers(tmp_path, "short.bin")


def test_writeback_is_requested_for_the_range_written_since_the_last_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from offload_conformance.reference_impl import writeback

    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(writeback, "_FN", lambda *args: calls.append(args) or 0)
    monkeypatch.setattr(writeback, "EVERY", 100)
    wb = writeback.Writeback(7)
    wb.wrote(1000, 60)
    assert calls == []
    wb.wrote(1060, 60)  # 120 bytes pending: one request for [1000, 1120)
    wb.wrote(1120, 30)
    wb.wrote(500, 80)  # out of order (a group transformers reverted): the range grows to cover it
    assert calls == [(7, 1000, 120, 2), (7, 500, 650, 2)]


# --- direct: front to back past the page cache ------------------------------------------------


def _direct_case(tmp_path: Path) -> tuple[dict[str, torch.Tensor], list[TensorPlan], Path]:
    tensors = {
        "a": make_tensor(torch.bfloat16, (96, 100), 1),  # 19200 bytes: spans chunks of 8192
        "b": make_tensor(torch.float32, (3,), 2),
        "c": make_tensor(torch.bfloat16, (0,), 3),
        "d": make_tensor(torch.int8, (9000,), 4),
    }
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    return tensors, [TensorPlan(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()], tmp_path / "ref.safetensors"


def _file_order(plan: list[TensorPlan]) -> list[str]:
    _, offsets = header_bytes(plan, {"format": "pt"})
    return list(offsets)


@pytest.mark.parametrize("o_direct", [True, False], ids=["o_direct", "no-o_direct-filesystem"])
def test_direct_writes_the_bytes_save_file_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, o_direct: bool
) -> None:
    from offload_conformance.reference_impl import writer as writer_module
    from offload_conformance.reference_impl.writer import FileRange

    if not o_direct:  # as on tmpfs: the writer goes through the page cache instead
        monkeypatch.setattr(writer_module, "open_direct", lambda path: None)
    tensors, plan, ref = _direct_case(tmp_path)
    source = tmp_path / "a.bin"
    source.write_bytes(b"x" * 5 + bytes(tensor_bytes_of(tensors["a"])))
    fd = os.open(source, os.O_RDONLY)
    try:
        with StreamingWriter(tmp_path / "out.safetensors", plan, {"format": "pt"}, direct_chunk=8192) as w:
            if o_direct and not w.direct:
                pytest.skip("this filesystem has no O_DIRECT")
            assert w.direct == o_direct
            for name in _file_order(plan):
                if name == "a":
                    w.write_parts("a", [FileRange(fd, 5, 7000), FileRange(fd, 5 + 7000, 19200 - 7000)])
                else:
                    w.write(name, tensors[name])
    finally:
        os.close(fd)
    assert (tmp_path / "out.safetensors").read_bytes() == ref.read_bytes()
    no_leftovers(tmp_path, "ref.safetensors", "a.bin", "out.safetensors")


def tensor_bytes_of(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def test_direct_refuses_a_tensor_out_of_file_order(tmp_path: Path) -> None:
    tensors, plan, _ = _direct_case(tmp_path)
    order = _file_order(plan)
    with (
        pytest.raises(ValueError, match="out of file order"),
        StreamingWriter(tmp_path / "out.safetensors", plan, direct_chunk=8192) as w,
    ):
        if not w.direct:
            pytest.skip("this filesystem has no O_DIRECT")
        w.write(order[1], tensors[order[1]])
    no_leftovers(tmp_path, "ref.safetensors")


def test_a_failed_direct_write_surfaces_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    tensors, plan, _ = _direct_case(tmp_path)
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: object, offset: int) -> int:
        if offset >= 8192:  # the disk fills up after the first chunk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    with (
        pytest.raises(OSError, match="No space left"),
        StreamingWriter(tmp_path / "out.safetensors", plan, direct_chunk=8192) as w,
    ):
        if not w.direct:
            pytest.skip("this filesystem has no O_DIRECT")
        monkeypatch.setattr(os, "pwrite", pwrite)
        for name in _file_order(plan):
            w.write(name, tensors[name])
    no_leftovers(tmp_path, "ref.safetensors")
