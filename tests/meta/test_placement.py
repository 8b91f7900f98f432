"""Class `placement`: the model as loaded holds in memory what its placement keeps there, and nothing it offloads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate import cpu_offload, dispatch_model
from torch import nn

from offload_conformance.harness.outcomes import LIFECYCLE_CLASSES, FailureClass
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.run.placement import misplaced


class Toy(nn.Module):
    def __init__(self, tied: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(vocab_size=16)
        self.embed = nn.Embedding(16, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 16, bias=False)
        if tied:
            self.head.weight = self.embed.weight
            self.all_tied_weights_keys = {"head.weight": "embed.weight"}
        self.register_buffer("table", torch.arange(4))  # persistent
        self.norm.register_buffer("scratch", torch.zeros(2), persistent=False)


def _details(model: nn.Module, mode: str) -> list[str]:
    found = misplaced(model, by_name(mode))
    assert all(d.cls is FailureClass.PLACEMENT for d in found)
    return [d.detail for d in found]


def test_placement_is_judged_on_the_cell_itself() -> None:
    assert FailureClass.PLACEMENT in LIFECYCLE_CLASSES


@pytest.mark.parametrize("offload_buffers", [False, True])
def test_accelerates_cpu_offload_holds_nothing_it_offloads(offload_buffers: bool) -> None:
    model = Toy()
    cpu_offload(model, execution_device=torch.device("cpu"), offload_buffers=offload_buffers)
    mode = "accelerate-cpu+offload_buffers" if offload_buffers else "accelerate-cpu"
    assert _details(model, mode) == []
    # Persistent buffers are offloaded only with offload_buffers, non-persistent ones never.
    assert (model.table.device.type == "meta") is offload_buffers
    assert model.norm.scratch.device.type == "cpu"


def test_a_hook_that_does_not_move_offloaded_weights_to_meta_holds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug: accelerate's init_hook not setting offloaded tensors to `meta` (a mutant of `add_hook_to_module`
    that drops the `init_hook` call survived every other check): the whole model stays in RAM beside its storage."""
    from accelerate.hooks import AlignDevicesHook

    monkeypatch.setattr(AlignDevicesHook, "init_hook", lambda self, module: module)
    model = Toy()
    cpu_offload(model, execution_device=torch.device("cpu"), offload_buffers=True)
    nbytes = (16 * 8 + 8 + 8 + 16 * 8) * 4 + 4 * 8  # embed, norm weight and bias, head; the int64 table
    assert _details(model, "accelerate-cpu+offload_buffers") == [
        f"the load holds in memory {nbytes} bytes its placement offloads (not meta in the module): "
        "embed.weight, head.weight, norm.bias and 2 more"
    ]


def _dispatched(tmp_path: Path, device_map: dict[str, str], tied: bool = False) -> Toy:
    model = Toy(tied)
    return dispatch_model(model, device_map, offload_dir=str(tmp_path), offload_buffers=True)


def test_a_map_offloads_only_disk_when_the_cpu_is_the_main_device(tmp_path: Path) -> None:
    model = _dispatched(tmp_path, {"embed": "cpu", "norm": "disk", "head": "disk", "table": "cpu"})
    assert _details(model, "disk-partial+offload_buffers") == []
    model.head.weight = nn.Parameter(torch.ones(16, 8))  # loaded into the module after all
    model.embed.weight = nn.Parameter(torch.empty(16, 8, device="meta"))  # kept in memory, never loaded
    assert _details(model, "disk-partial+offload_buffers") == [
        "the load holds in memory 512 bytes its placement offloads (not meta in the module): head.weight",
        "tensors the placement keeps in memory are meta (never loaded): embed.weight",
    ]


def test_a_tie_kept_in_memory_under_one_name_is_in_memory() -> None:
    """map-head-on-disk: the embedding on cpu, its tied head on disk. One tensor object: held once either way."""
    model = Toy(tied=True)
    model.hf_device_map = {"embed": "cpu", "norm": "cpu", "head": "disk", "table": "cpu"}
    assert model.head.weight is model.embed.weight
    assert _details(model, "map-head-on-disk") == []
    model.head.weight = nn.Parameter(model.embed.weight.detach().clone())  # untied: a second copy in memory
    assert _details(model, "map-head-on-disk") == [
        "the load holds in memory 512 bytes its placement offloads (not meta in the module): head.weight"
    ]


def test_with_an_accelerator_in_the_map_the_cpu_holds_offloaded_weights_too() -> None:
    model = Toy()
    model.hf_device_map = {"embed": 0, "norm": "cpu", "head": "disk", "table": 0}  # as transformers records it
    found = _details(model, "disk-partial")
    assert found == [
        "the load holds in memory 576 bytes its placement offloads (not meta in the module): "
        "head.weight, norm.bias, norm.weight"
    ]


def test_an_in_memory_model_holds_everything() -> None:
    model = Toy()
    assert _details(model, "in-memory") == []
    model.norm.weight = nn.Parameter(torch.empty(8, device="meta"))
    assert _details(model, "in-memory") == [
        "tensors the placement keeps in memory are meta (never loaded): norm.weight"
    ]


def test_a_mode_that_offloads_with_no_map_says_nothing() -> None:
    assert _details(Toy(), "disk-full") == []


def test_after_accelerate_s_undo_every_weight_is_held_in_memory() -> None:
    """`+remove-hooks` (remove_hook_from_submodules) puts an accelerate-cpu model's weights back in RAM: that is its
    placement, not one that offloads them (the step's cells failed `placement` for every IUT)."""
    from accelerate.hooks import remove_hook_from_submodules

    model = Toy()
    cpu_offload(model, execution_device=torch.device("cpu"), offload_buffers=True)
    remove_hook_from_submodules(model)
    assert _details(model, "accelerate-cpu+offload_buffers+remove-hooks") == []
    assert _details(model, "accelerate-cpu+offload_buffers") != []  # the same model, held to the offloading mode
