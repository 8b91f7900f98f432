"""The save options upstream's save_pretrained takes (variant, save_original_format, state_dict), a save into a
directory that holds an earlier save, and a save into the directory the offloaded model was loaded from: the
reference writes what transformers' in-memory save writes into an empty directory, byte for byte."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.reference_impl import SaveError, save_pretrained
from offload_conformance.reference_impl import save as save_module
from offload_conformance.reference_impl.files import WeightFiles

MOE, DENSE = "qwen3_moe", "llama"  # fused experts reverted on save; no conversion at all
OFFLOADED = "disk-full+offload_buffers"
OWN = "own"  # stands for the saved model's own model.state_dict()
FUSED = "model.layers.0.mlp.experts.gate_up_proj"

OPTIONS: list[dict[str, Any]] = [
    {"variant": "v1"},
    {"variant": "v1", "max_shard_size": "24KB"},
    {"save_original_format": False},
    {"save_original_format": False, "max_shard_size": "24KB"},
    {"state_dict": OWN},
    {"state_dict": OWN, "max_shard_size": "24KB"},
]


def _label(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _files(d: Path, keep: Callable[[str], bool] = lambda name: True) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if keep(p.name)}


def _load(fixture: Path, placement: str, offload: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    m = mode(placement)
    model = AutoModelForCausalLM.from_pretrained(fixture, dtype=torch.bfloat16, **m.load_kwargs(None, offload))  # type: ignore[arg-type]
    m.after_load(model, offload)
    return model


@pytest.fixture(scope="module")
def fixtures(_fixture_cache: Path) -> dict[str, Path]:
    return {name: generate(by_name(name)) for name in (MOE, DENSE, "qwen3_moe_sharded")}


@pytest.fixture(scope="module")
def models(fixtures: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Models loaded once per module: (fixture, placement) -> model. A save changes nothing of a model these tests
    compare (the in-place tests load their own)."""
    loaded: dict[tuple[str, str], torch.nn.Module] = {}

    def get(name: str, placement: str = "in-memory") -> torch.nn.Module:
        if (name, placement) not in loaded:
            loaded[(name, placement)] = _load(fixtures[name], placement, tmp_path_factory.mktemp("offload"))
        return loaded[(name, placement)]

    yield get
    loaded.clear()


def _with_state_dict(options: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    return {**options, "state_dict": model.state_dict()} if options.get("state_dict") == OWN else dict(options)


@pytest.mark.parametrize("options", OPTIONS, ids=_label)
@pytest.mark.parametrize("placement", ["in-memory", OFFLOADED])
@pytest.mark.parametrize("name", [MOE, DENSE])
def test_option_writes_the_in_memory_checkpoint(
    tmp_path: Path, models: Callable[..., Any], name: str, placement: str, options: dict[str, Any]
) -> None:
    in_memory, model = models(name), models(name, placement)
    in_memory.save_pretrained(tmp_path / "in-memory", **_with_state_dict(options, in_memory))
    save_pretrained(model, tmp_path / "reference", **_with_state_dict(options, model))
    expected = _files(tmp_path / "in-memory")
    assert _files(tmp_path / "reference") == expected
    files = WeightFiles(options.get("variant"))
    sharded = "max_shard_size" in options
    assert (files.index in expected) is sharded and (files.weights in expected) is not sharded, sorted(expected)


@pytest.mark.parametrize("name", [MOE, DENSE])
def test_own_state_dict_is_streamed_and_equals_the_save_without_it(
    tmp_path: Path, models: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The model's own state dict (meta placeholders for offloaded tensors) is recognised as such: the save
    streams from offload storage as without it, and writes the same bytes."""
    model = models(name, OFFLOADED)
    save_pretrained(model, tmp_path / "without", max_shard_size="24KB")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model's own state dict went through the in-memory path")

    monkeypatch.setattr(save_module, "_given_checkpoint", refuse)
    save_pretrained(model, tmp_path / "with", max_shard_size="24KB", state_dict=model.state_dict())
    assert _files(tmp_path / "with") == _files(tmp_path / "without")


def test_own_state_dict_in_another_order_is_planned_in_that_order(
    tmp_path: Path, models: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a revert the shard planner takes the tensors in the state dict's order: a reordered state dict of
    the model's own tensors gives other shards (still streamed)."""
    in_memory, model = models(DENSE), models(DENSE, OFFLOADED)
    options = {"save_original_format": False, "max_shard_size": "24KB"}
    in_memory.save_pretrained(
        tmp_path / "in-memory", state_dict=dict(reversed(in_memory.state_dict().items())), **options
    )
    monkeypatch.setattr(save_module, "_given_checkpoint", lambda *a, **k: pytest.fail("not streamed"))
    save_pretrained(model, tmp_path / "reference", state_dict=dict(reversed(model.state_dict().items())), **options)
    assert _files(tmp_path / "reference") == _files(tmp_path / "in-memory")
    in_memory.save_pretrained(tmp_path / "in-order", **options)
    assert _files(tmp_path / "in-memory") != _files(tmp_path / "in-order")  # the order does matter here


def _edits(in_memory: torch.nn.Module) -> dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]]:
    """State dict edits a wrapper might make; each takes the model's state_dict() (meta placeholders where
    offloaded), the replacement tensors are the in-memory model's, so both saves get the same values."""
    own = in_memory.state_dict()
    return {
        "value": lambda sd: {**sd, FUSED: own[FUSED] * 2},
        "dtype": lambda sd: {**sd, FUSED: own[FUSED].float()},
        "extra-name": lambda sd: {**sd, "extra.weight": torch.arange(6, dtype=torch.float32)},
        "missing-name": lambda sd: {k: v for k, v in sd.items() if k != "model.norm.weight"},
    }


@pytest.mark.parametrize("options", [{}, {"max_shard_size": "24KB"}, {"save_original_format": False}], ids=_label)
@pytest.mark.parametrize("edit", ["value", "dtype", "extra-name", "missing-name"])
def test_another_state_dict_writes_what_the_in_memory_save_writes_for_it(
    tmp_path: Path, models: Callable[..., Any], edit: str, options: dict[str, Any]
) -> None:
    in_memory, model = models(MOE), models(MOE, OFFLOADED)
    change = _edits(in_memory)[edit]
    in_memory.save_pretrained(tmp_path / "in-memory", state_dict=change(in_memory.state_dict()), **options)
    save_pretrained(model, tmp_path / "reference", state_dict=change(model.state_dict()), **options)
    assert _files(tmp_path / "reference") == _files(tmp_path / "in-memory")
    in_memory.save_pretrained(tmp_path / "unchanged", **options)
    assert _files(tmp_path / "in-memory") != _files(tmp_path / "unchanged")  # the edit shows in the checkpoint


BAD_STATE_DICTS: list[tuple[str, str, Callable[[dict[str, torch.Tensor]], dict[str, Any]], str]] = [
    ("not-a-tensor", OFFLOADED, lambda sd: {**sd, FUSED: "packed"}, f"{FUSED} is a str, not a tensor"),
    (
        "meta-not-offloaded",
        "in-memory",
        lambda sd: {**sd, FUSED: torch.empty(sd[FUSED].shape, dtype=sd[FUSED].dtype, device="meta")},
        f"{FUSED} is a meta tensor",
    ),
    (
        "revert-fails",  # transformers' revert splits the fused experts along a dimension a 1-D tensor lacks
        OFFLOADED,
        lambda sd: {**sd, FUSED: torch.ones(5, dtype=torch.bfloat16)},
        f"state_dict['{FUSED}'] (bfloat16[5] on cpu) is not the model's own bfloat16[4, 64, 64]",
    ),
]


@pytest.mark.parametrize(("case", "placement", "edit", "message"), BAD_STATE_DICTS, ids=[b[0] for b in BAD_STATE_DICTS])
def test_a_state_dict_that_cannot_be_saved_is_one_line_and_target_untouched(
    tmp_path: Path,
    models: Callable[..., Any],
    case: str,
    placement: str,
    edit: Callable[[dict[str, torch.Tensor]], dict[str, Any]],
    message: str,
) -> None:
    model = models(MOE, placement)
    target = tmp_path / "target"
    models(MOE).save_pretrained(target)
    before = _files(target)
    with pytest.raises(SaveError) as e:
        save_pretrained(model, target, state_dict=edit(model.state_dict()))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert _files(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["target"]  # no staging left


# An earlier save in the target, then the reference's save of other options: (earlier, new)
SHAPES: list[dict[str, Any]] = [
    {},
    {"max_shard_size": "8KB"},
    {"variant": "v1"},
    {"variant": "v1", "max_shard_size": "8KB"},
]
NEW: list[dict[str, Any]] = [
    {},
    {"max_shard_size": "24KB"},
    {"variant": "v1"},
    {"variant": "v1", "max_shard_size": "24KB"},
]


@pytest.mark.parametrize("new", NEW, ids=_label)
@pytest.mark.parametrize("earlier", SHAPES, ids=lambda o: f"earlier-{_label(o)}")
def test_stale_weight_files_of_the_variant_go_all_else_stays(
    tmp_path: Path, models: Callable[..., Any], earlier: dict[str, Any], new: dict[str, Any]
) -> None:
    """This variant's weight files and index come out as in an empty directory (a stale single file beside a new
    index would be what from_pretrained loads); another variant's files and every other file stay as they were."""
    in_memory = models(MOE)
    target = tmp_path / "target"
    in_memory.save_pretrained(target, **earlier)
    (target / "tokenizer.json").write_text("{}")
    (target / "README.md").write_text("# mine\n")
    before = _files(target)
    in_memory.save_pretrained(tmp_path / "empty-dir", **new)
    expected = _files(tmp_path / "empty-dir")

    save_pretrained(models(MOE, OFFLOADED), target, **new)
    files = WeightFiles(new.get("variant"))
    after = _files(target)
    assert {n: h for n, h in after.items() if files.owns(n)} == {n: h for n, h in expected.items() if files.owns(n)}
    assert {n: after[n] for n in expected} == expected  # config and generation config too
    others = {n: h for n, h in before.items() if not files.owns(n) and n not in expected}
    assert {n: after.get(n) for n in others} == others  # other variants' files, tokenizer, README: untouched
    assert set(after) == set(expected) | set(others)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the model's state dict, offloaded ones read the way transformers' own save reads them."""
    from transformers.integrations.accelerate import load_offloaded_parameter

    return {
        n: (load_offloaded_parameter(model, n) if t.device.type == "meta" else t).detach().clone()
        for n, t in model.state_dict().items()
    }


# (fixture loaded from the target, save options, what it exercises)
IN_PLACE: list[tuple[str, dict[str, Any], str]] = [
    (MOE, {}, "the same single file: every offload entry keeps its path"),
    (MOE, {"max_shard_size": "24KB"}, "single file -> shards: entries follow their tensors into the shards"),
    ("qwen3_moe_sharded", {}, "shards -> single file: entries follow their tensors into the single file"),
    ("qwen3_moe_sharded", {"max_shard_size": "16KB"}, "reshard: the shard names stay, their contents change"),
    (DENSE, {"max_shard_size": "24KB"}, "no conversion: the whole model is read from the target"),
    (MOE, {"save_original_format": False}, "the in-memory names"),
    (MOE, {"variant": "v1", "max_shard_size": "24KB"}, "another variant: the loaded files stay"),
    (MOE, {"state_dict": "edited"}, "other tensors than the model's: the old file is kept for the model"),
]


@pytest.mark.parametrize(("name", "options", "what"), IN_PLACE, ids=[f"{c[0]}-{_label(c[1])}" for c in IN_PLACE])
def test_in_place_save_of_a_model_offloaded_into_its_own_checkpoint(
    tmp_path: Path, fixtures: dict[str, Path], models: Callable[..., Any], name: str, options: dict[str, Any], what: str
) -> None:
    """transformers 5.x points the offload index of every tensor it did not convert into the checkpoint it loaded;
    saving into that directory replaces those files under the model. The save is the in-memory save's, and the model
    reads the same tensors afterwards (and computes the same logits)."""
    target = tmp_path / "model"
    shutil.copytree(fixtures[name], target)
    model = _load(target, "disk-full", tmp_path / "offload")
    hook = next(m._hf_hook for m in model.modules() if getattr(getattr(m, "_hf_hook", None), "weights_map", None))
    index = hook.weights_map.dataset.index
    assert any(Path(e.get("safetensors_file", "")).parent == target for e in index.values()), "nothing read in place"
    in_memory = models(name)
    expected_options = dict(options)
    if options.get("state_dict") == "edited":
        edited = in_memory.state_dict()["model.norm.weight"] + 1
        expected_options["state_dict"] = {**in_memory.state_dict(), "model.norm.weight": edited}
        options = {"state_dict": {**model.state_dict(), "model.norm.weight": edited}}
    in_memory.save_pretrained(tmp_path / "empty-dir", **expected_options)
    ids = torch.arange(8).reshape(1, 8)
    before, logits = _params(model), model(ids).logits
    manifest = (target / "manifest.json").read_bytes()

    save_pretrained(model, target, **options)
    if options.get("variant") is None:
        assert _files(target, lambda n: n != "manifest.json") == _files(tmp_path / "empty-dir"), what
    else:  # the variant's files beside the checkpoint the model was loaded from, which stays as it was
        owns = WeightFiles("v1").owns
        assert _files(target, owns) == _files(tmp_path / "empty-dir", owns), what
        assert _files(target, WeightFiles().owns) == _files(fixtures[name], WeightFiles().owns)
    assert (target / "manifest.json").read_bytes() == manifest
    after = _params(model)
    assert [n for n in before if not torch.equal(before[n], after[n])] == [], what
    assert torch.equal(model(ids).logits, logits), what


@pytest.mark.parametrize("variant", ["a/b", "v{suffix}"])
def test_a_variant_that_cannot_name_a_file_is_one_line(
    tmp_path: Path, models: Callable[..., Any], variant: str
) -> None:
    with pytest.raises(SaveError, match="cannot be part of a file name") as e:
        save_pretrained(models(MOE, OFFLOADED), tmp_path / "target", variant=variant)
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []
