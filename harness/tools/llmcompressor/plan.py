"""What the llm-compressor run covers: schemes, fixtures, modes and savers, and the cell ids they make.

Planning only: nothing here imports llmcompressor, so `--list` and the meta tests run without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from offload_conformance.fixtures import FixtureSpec, by_name
from offload_conformance.fixtures.catalog import layout_for
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import BASELINE_MODE, Mode
from offload_conformance.harness.plan.modes import by_name as mode_by_name
from offload_conformance.harness.plan.selection import PlanError

FLOW = "offload_conformance.harness.tools.llmcompressor.flow"  # the savers a cell process resolves
SAVERS = ("upstream", "reference")
BASELINE_SAVER = "upstream"  # llm-compressor's own save_pretrained wrapper, on the in-memory model
# Disk placements from from_pretrained's device_map, then accelerate's own cpu_offload/disk_offload of a loaded
# model (no hf_device_map): both are ways users hand llm-compressor an offloaded model.
# Then the device maps users write by hand, and accelerate's own big-model loading (dispatch-*, load_checkpoint-*:
# the same model either way, so each placement once, offload_buffers both ways across the two).
PLACEMENTS = (
    "disk-full",
    "disk-partial",
    "experts-on-disk",
    "accelerate-cpu",
    "accelerate-disk",
    "map-head-on-disk",
    "map-routers-on-disk",
    "map-all-disk",
    "map-layer-split",
)
LOADERS = (
    "dispatch-disk-full",
    "dispatch-disk-partial+offload_buffers",
    "load_checkpoint-disk-partial",
    "load_checkpoint-experts-on-disk+offload_buffers",
)
MODE_NAMES = tuple([BASELINE_MODE] + [f"{p}{b}" for p in PLACEMENTS for b in ("", "+offload_buffers")] + list(LOADERS))
# Modes that place expert or router modules: only on a model that has them (the 'fused' weight kind).
MOE_ONLY = ("experts-on-disk", "map-routers-on-disk", "load_checkpoint-experts-on-disk")


# Module names as llm-compressor's oneshot sees them (MoE experts unfused into per-expert Linears), for the mixed
# recipe of the DeepSeek-V4 / GLM-5 workflow: routed experts; attention projections (MLA's q/kv/o, DeepSeek-V4's
# grouped o_a/o_b; not the DSA indexer or V4's compressor); the shared expert and the dense MLPs of the first layers.
# Router and head stay bf16.
ROUTED_EXPERTS = r"re:.*mlp\.experts\.\d+\.(gate|up|down)_proj$"
ATTENTION = r"re:.*self_attn\.(q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|kv_proj|o_proj|o_a_proj|o_b_proj)$"
SHARED_AND_DENSE_MLP = r"re:.*mlp\.(shared_experts\.)?(gate|up|down)_proj$"
ROUTER_AND_HEAD = ("lm_head", r"re:.*mlp\.gate$")


@dataclass(frozen=True)
class Scheme:
    """A data-free QuantizationModifier: a preset scheme, presets per target group, or integer weights in groups."""

    name: str
    preset: str | None = None  # e.g. FP8_DYNAMIC
    weight_bits: int | None = None
    group_size: int | None = None
    ignore: tuple[str, ...] = ("lm_head",)
    # (preset, its targets) per group: llm-compressor's `scheme={preset: targets}` (one modifier, several groups).
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def modifier_kwargs(self) -> dict[str, Any]:
        """QuantizationModifier(**this)."""
        common: dict[str, Any] = {"ignore": list(self.ignore)}
        if self.groups:
            return {"scheme": {preset: list(targets) for preset, targets in self.groups}, **common}
        if self.preset:
            return {"targets": "Linear", "scheme": self.preset, **common}
        weights = {
            "num_bits": self.weight_bits,
            "type": "int",
            "symmetric": True,
            "strategy": "group",
            "group_size": self.group_size,
        }
        return {"config_groups": {"group_0": {"targets": ["Linear"], "weights": weights}}, **common}

    def preset_for(self, linear: str) -> str | None:
        """The preset the Linear module named `linear` gets, matched as compressed-tensors matches targets (`re:` a
        regex from the start of the name, else the exact name or `Linear`); None where it stays unquantized."""
        if any(_matches(t, linear) for t in self.ignore):
            return None
        if not self.groups:
            return self.preset or f"W{self.weight_bits}A16_G{self.group_size}"
        hits = [preset for preset, targets in self.groups if any(_matches(t, linear) for t in targets)]
        if len(hits) > 1:
            raise ValueError(f"scheme {self.name!r}: {linear} is a target of {hits}")
        return hits[0] if hits else None


def _matches(target: str, name: str) -> bool:
    if target.startswith("re:"):
        return re.match(target[3:], name) is not None
    return target in (name, "Linear")


SCHEMES: tuple[Scheme, ...] = (
    Scheme("fp8_dynamic", preset="FP8_DYNAMIC"),
    # The W4A16 preset groups by 128, more than the fixtures' hidden size of 64: group 32 instead. DeepSeek-V3's
    # kv_b_proj takes kv_lora_rank (16) inputs, which no group of 32 divides: it stays bf16, as lm_head does.
    Scheme("w4a16_g32", weight_bits=4, group_size=32, ignore=("lm_head", "re:.*kv_b_proj$")),
    # NVFP4 weights (fp4 in groups of 16, fp8 group scales, an fp32 global scale) on every Linear: the NVFP4A16
    # preset is weight-only, so data-free (NVFP4 with fp4 activations needs calibration).
    Scheme("nvfp4", preset="NVFP4A16", ignore=ROUTER_AND_HEAD),
    # The workflow of issue 27: NVFP4 routed experts, FP8 128x128 blocks (FP8_BLOCK: dynamic activations, data-free)
    # on attention, the shared expert and dense MLPs; a weight smaller than a block is one partial block.
    Scheme(
        "nvfp4_fp8_mixed",
        groups=(("NVFP4A16", (ROUTED_EXPERTS,)), ("FP8_BLOCK", (ATTENTION, SHARED_AND_DENSE_MLP))),
        ignore=ROUTER_AND_HEAD,
    ),
)
FIXTURES: tuple[FixtureSpec, ...] = (
    by_name("qwen3_moe"),
    by_name("deepseek_v3"),
    FixtureSpec(name="llama", architecture="llama"),  # dense: no experts-on-disk
    by_name("deepseek_v4"),  # Hub naming; persistent router bias and hash table, a shared expert
    by_name("glm5"),  # glm_moe_dsa, the model type of GLM-5's Hub config
)
# The modes of the workflow of issue 27 (the seed's fully-on-disk load first), each with offload_buffers both ways.
WORKFLOW_MODES = tuple(
    [BASELINE_MODE]
    + [f"{p}{b}" for p in ("disk-full", "disk-partial", "experts-on-disk") for b in ("", "+offload_buffers")]
)


@dataclass(frozen=True)
class Track:
    """Fixtures that run these schemes in these modes (the cross product of all would not fit 10 minutes)."""

    fixtures: tuple[str, ...]
    schemes: tuple[str, ...]
    modes: tuple[str, ...]


TRACKS: tuple[Track, ...] = (
    Track(("qwen3_moe", "deepseek_v3", "llama"), ("fp8_dynamic", "w4a16_g32"), MODE_NAMES),
    # The DeepSeek-V4 / GLM-5 workflow: its two schemes in its modes; every save is also loaded back (roundtrip.py).
    Track(("deepseek_v4", "glm5"), ("nvfp4", "nvfp4_fp8_mixed"), WORKFLOW_MODES),
)
ROUND_TRIP_SCHEMES = frozenset(TRACKS[1].schemes)


@dataclass(frozen=True)
class FlowCell:
    """Load a fixture in a mode, quantize it with a scheme, save it with a saver."""

    fixture: FixtureSpec
    scheme: Scheme
    mode: Mode
    saver: str

    @property
    def cell_id(self) -> str:
        return f"{self.fixture.name}-{self.scheme.name}-{self.mode.name}-{self.saver}"

    @property
    def baseline(self) -> FlowCell:
        """The flow every cell is compared with: in memory, saved by llm-compressor's own wrapper."""
        return FlowCell(self.fixture, self.scheme, mode_by_name(BASELINE_MODE), BASELINE_SAVER)

    @property
    def save_options(self) -> dict[str, str]:
        return {"scheme": self.scheme.name}

    def as_cell(self) -> Cell:
        """The harness cell that runs this flow: its saver quantizes, then saves (see flow.py)."""
        return Cell(self.fixture, self.mode, f"{FLOW}:{self.saver}", tuple(self.save_options.items()))


def applies(spec: FixtureSpec, mode: Mode) -> bool:
    """The modes of MOE_ONLY need routed experts (the 'fused' weight kind)."""
    return not mode.name.startswith(MOE_ONLY) or "fused" in layout_for(spec).kinds


def _pick(names: tuple[str, ...], known: dict[str, Any], what: str) -> list[Any]:
    for n in names:
        if n not in known:
            raise PlanError(f"unknown {what} {n!r} (known: {', '.join(known)})")
    return [known[n] for n in names] if names else list(known.values())


def plan(
    fixtures: tuple[str, ...] = (),
    schemes: tuple[str, ...] = (),
    modes: tuple[str, ...] = (),
    savers: tuple[str, ...] = (),
) -> list[FlowCell]:
    """Every applicable combination within a track (all of each axis by default), in report order."""
    specs = _pick(fixtures, {s.name: s for s in FIXTURES}, "fixture")
    picked_schemes = _pick(schemes, {s.name: s for s in SCHEMES}, "scheme")
    picked_modes = _pick(modes, {m: mode_by_name(m) for m in MODE_NAMES}, "mode")
    picked_savers = _pick(savers, {s: s for s in SAVERS}, "saver")
    return [
        FlowCell(f, s, m, saver)
        for track in TRACKS
        for f in specs
        if f.name in track.fixtures
        for s in picked_schemes
        if s.name in track.schemes
        for m in picked_modes
        if m.name in track.modes
        for saver in picked_savers
        if applies(f, m)
    ]


def scheme_by_name(name: str) -> Scheme:
    return _pick((name,), {s.name: s for s in SCHEMES}, "scheme")[0]
