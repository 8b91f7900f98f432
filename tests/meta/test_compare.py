"""Comparator meta-tests: one hand-made pair per failure class, each classified exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.outcomes import COST_CLASSES, FailureClass
from tests.ckpt import INDEX, base_tensors, write, write_reordered

E0 = "model.layers.0.mlp.experts.0.up_proj.weight"
E1 = "model.layers.0.mlp.experts.1.up_proj.weight"
FP8 = "model.layers.0.mlp.experts.0.down_proj.weight"
SCALE = "model.layers.0.mlp.experts.0.down_proj.weight_scale_inv"
BIAS = "model.layers.0.mlp.gate.e_score_correction_bias"


def _mutated(change: Callable[[dict[str, torch.Tensor]], None]) -> dict[str, torch.Tensor]:
    t = base_tensors()
    change(t)
    return t


def _perturb(t: dict[str, torch.Tensor]) -> None:
    x = t[E0].clone()
    x[0, 0] += 1
    t[E0] = x


def _swap(t: dict[str, torch.Tensor]) -> None:
    t[E0], t[E1] = t[E1], t[E0]


def _perturb_fp8(t: dict[str, torch.Tensor]) -> None:
    raw = t[FP8].view(torch.uint8).clone()
    raw[0, 0] ^= 1
    t[FP8] = raw.view(torch.float8_e4m3fn)


# (case, how the actual checkpoint is written, expected classes, expected grade)
CASES: list[tuple[str, Callable[[Path], None], set[str], str | None]] = [
    ("missing-tensor", lambda d: write(d, _mutated(lambda t: t.pop(SCALE))), {"missing-tensor"}, None),
    ("extra-tensor", lambda d: write(d, _mutated(lambda t: t.update(x=torch.ones(3)))), {"extra-tensor"}, None),
    ("dtype", lambda d: write(d, _mutated(lambda t: t.update({BIAS: t[BIAS].to(torch.bfloat16)}))), {"dtype"}, None),
    ("shape", lambda d: write(d, _mutated(lambda t: t.update({E0: t[E0].reshape(8, 4)}))), {"shape"}, None),
    ("values", lambda d: write(d, _mutated(_perturb)), {"values"}, None),
    ("values-fp8", lambda d: write(d, _mutated(_perturb_fp8)), {"values"}, None),
    ("permuted", lambda d: write(d, _mutated(_swap)), {"permuted"}, None),
    (
        "meta-or-empty",
        lambda d: write(d, _mutated(lambda t: t.update({BIAS: torch.zeros(2)}))),
        {"meta-or-empty"},
        None,
    ),
    ("header-metadata", lambda d: write(d, base_tensors(), metadata={"format": "np"}), {"header-metadata"}, "tensors"),
    ("shard-layout", lambda d: write(d, base_tensors(), max_shard_size=100), {"shard-layout"}, "tensors"),
    (
        "order",
        lambda d: (write(d, base_tensors()), write_reordered(d / "model.safetensors", base_tensors())),
        {"order"},
        "tensors",
    ),
    ("file-set", lambda d: (write(d, base_tensors()), (d / "README.md").write_text("hi")), {"file-set"}, "tensors"),
    ("other-file", lambda d: write(d, base_tensors(), config='{"model_type": "other"}\n'), {"other-file"}, "tensors"),
    (
        "quantization-config",
        lambda d: write(
            d, base_tensors(), config='{"model_type": "toy", "quantization_config": {"quant_method": "fp8"}}'
        ),
        {"quantization-config", "other-file"},
        None,
    ),
    (
        "unreadable-file",
        lambda d: (write(d, base_tensors()), _truncate(d / "model.safetensors")),
        {"unreadable-file", "missing-tensor"},
        None,
    ),
]


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:50])


@pytest.mark.parametrize(("case", "make", "classes", "grade"), CASES, ids=[c[0] for c in CASES])
def test_each_class_is_named_exactly(
    tmp_path: Path, case: str, make: Callable[[Path], None], classes: set[str], grade: str | None
) -> None:
    expected = write(tmp_path / "expected", base_tensors())
    make(tmp_path / "actual")
    result = compare(expected, tmp_path / "actual")
    assert set(result.classes) == classes, result.differences
    assert result.grade == grade
    assert all(d.detail for d in result.differences)


def test_every_class_has_a_case() -> None:
    covered = set().union(*(c[2] for c in CASES)) | {"index"}  # index: see the sharded tests below
    # Cost classes: tests/cells/test_cost.py. Classes judged beside the comparison (the model around the save,
    # a save on its own terms, resave): tests/meta/test_lifecycle.py, placement tests/meta/test_placement.py; of a
    # save into a directory that held files (reload, directory-changed): tests/meta/test_contexts.py; of the Hub a
    # save pushes to (hub-upload): tests/meta/test_hub.py; the load against the fixture's writer (load-fidelity):
    # tests/meta/test_load_fidelity.py.
    beside = {
        FailureClass.HUB_UPLOAD,
        FailureClass.RELOAD,
        FailureClass.DIRECTORY_CHANGED,
        FailureClass.MODEL_CHANGED,
        FailureClass.OFFLOAD_READ,
        FailureClass.PLACEMENT,
        FailureClass.OFFLOAD_FORWARD,
        FailureClass.LOAD_FIDELITY,
        FailureClass.RESAVE,
        FailureClass.SHARD_OVERSIZE,
        FailureClass.DROPPED_ON_LOAD,
        FailureClass.ROUND_TRIP,
    }
    assert covered == set(FailureClass) - COST_CLASSES - beside


def test_identical_pair_is_bytes(tmp_path: Path) -> None:
    a = write(tmp_path / "a", base_tensors(), max_shard_size=100)
    b = write(tmp_path / "b", base_tensors(), max_shard_size=100)
    result = compare(a, b)
    assert (result.grade, result.differences) == ("bytes", ())
    assert result.meets("bytes") and result.meets("tensors")


def test_index_pointing_at_wrong_shard(tmp_path: Path) -> None:
    expected = write(tmp_path / "e", base_tensors(), max_shard_size=100)
    actual = write(tmp_path / "a", base_tensors(), max_shard_size=100)
    index = json.loads((actual / INDEX).read_text())
    files = sorted(set(index["weight_map"].values()))
    index["weight_map"][E0] = next(f for f in files if f != index["weight_map"][E0])
    (actual / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    result = compare(expected, actual)
    assert result.classes == ("index",)
    assert result.grade == "tensors"
    assert E0 in result.differences[0].detail


def test_index_metadata_and_formatting(tmp_path: Path) -> None:
    expected = write(tmp_path / "e", base_tensors(), max_shard_size=100)
    actual = write(tmp_path / "a", base_tensors(), max_shard_size=100)
    index = json.loads((actual / INDEX).read_text())
    (actual / INDEX).write_text(json.dumps(index))  # same content, other formatting
    assert compare(expected, actual).classes == ("index",)
    index["metadata"]["total_size"] += 1
    (actual / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    result = compare(expected, actual)
    assert result.classes == ("index",)
    assert "total_size" in result.differences[0].detail


def test_missing_directory_is_all_missing(tmp_path: Path) -> None:
    expected = write(tmp_path / "e", base_tensors())
    result = compare(expected, tmp_path / "never-written")
    assert "missing-tensor" in result.classes
    assert result.grade is None


def test_require_tensors_accepts_layout_drift_only(tmp_path: Path) -> None:
    expected = write(tmp_path / "e", base_tensors())
    layout = compare(expected, write(tmp_path / "l", base_tensors(), max_shard_size=100))
    content = compare(expected, write(tmp_path / "c", _mutated(_perturb)))
    assert layout.meets("tensors") and not layout.meets("bytes")
    assert not content.meets("tensors")


_DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn]


@st.composite
def _tensor_sets(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    n = draw(st.integers(2, 6))  # dropping the only tensor would also drop its file
    names = draw(
        st.lists(
            st.from_regex(r"[a-z]{1,6}(\.[a-z0-9]{1,4}){0,2}", fullmatch=True), min_size=n, max_size=n, unique=True
        )
    )
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
        out[name] = (torch.randn(shape, generator=g) + 3).to(draw(st.sampled_from(_DTYPES)))
    return out


@settings(max_examples=25, deadline=None)
@given(tensors=_tensor_sets(), victim=st.integers(0, 100))
def test_generated_sets_identical_and_dropped(
    tmp_path_factory: pytest.TempPathFactory, tensors: dict[str, torch.Tensor], victim: int
) -> None:
    root = tmp_path_factory.mktemp("gen")
    expected = write(root / "e", tensors)
    assert compare(expected, write(root / "same", tensors)).grade == "bytes"
    name = sorted(tensors)[victim % len(tensors)]
    dropped = {k: v for k, v in tensors.items() if k != name}
    result = compare(expected, write(root / "drop", dropped))
    assert result.classes == ("missing-tensor",)
    assert result.differences[0].tensor == name
