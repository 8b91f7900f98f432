"""Where the default matrix runs the save contexts, the save options and the forced shard sizes.

Crossing them with every fixture and mode would multiply the matrix past its 5 minutes; each runs where the
bug it exists for can show: contexts and options on a fused MoE, a DeepSeek (buffers, shared experts), a dense
model and a many-to-one fusion; forced shard boundaries on every MoE with fused experts. Asked for explicitly
(`--context`, `--save-option`, `--max-shard-size per-tensor`), they apply to every selected cell instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from offload_conformance.harness.plan.cells import DEFAULT_SHARDS, SMALL_SHARDS
from offload_conformance.harness.plan.contexts import Context
from offload_conformance.harness.plan.options import NOT_MAIN_PROCESS, PUSH_AS_PR, PUSH_TO_HUB, RANK_1, SAVE_OPTIONS
from offload_conformance.harness.plan.shards import PER_TENSOR, SPLIT_GROUPS

SAVING_MODES = ("in-memory", "disk-partial", "disk-full+offload_buffers", "experts-on-disk")
HAND_WRITTEN_MAPS = ("map-head-on-disk", "map-routers-on-disk", "map-all-disk", "map-layer-split")


@dataclass(frozen=True)
class Extra:
    """Cells of `fixtures` x `modes` x `shard_sizes` x `options` x `contexts` (each axis: its values here)."""

    fixtures: tuple[str, ...]
    modes: tuple[str, ...]
    shard_sizes: tuple[str, ...] = (DEFAULT_SHARDS,)
    options: tuple[str | None, ...] = (None,)  # a plan.options SAVE_OPTIONS entry, or None: no other option
    contexts: tuple[Context, ...] = (Context.EMPTY,)
    impls: tuple[str, ...] = ()  # the run's IUTs (upstream and reference by default)


CONTEXT_FIXTURES = ("qwen3_moe", "qwen3_moe_sharded", "deepseek_v3", "llama", "hrm_text")
EXTRAS = (
    # Over an earlier save of another shape: a single-file save over a sharded one and the converse, fewer
    # shards over more, over another variant; and in place, at the fixture's own shard size and another.
    Extra(
        CONTEXT_FIXTURES,
        SAVING_MODES,
        (DEFAULT_SHARDS,),
        contexts=(Context.OVER_SHARDED, Context.OVER_VARIANT, Context.IN_PLACE),
    ),
    Extra(
        CONTEXT_FIXTURES,
        SAVING_MODES,
        (SMALL_SHARDS,),
        contexts=(Context.OVER_SINGLE, Context.OVER_SHARDED, Context.IN_PLACE),
    ),
    Extra(
        ("qwen3_moe", "deepseek_v3", "mixtral", "llama", "hrm_text"),
        SAVING_MODES,
        # the Hub's and rank 1's: fewer cells, below
        options=tuple(o for o in SAVE_OPTIONS if o not in (RANK_1, PUSH_TO_HUB, PUSH_AS_PR)),
    ),
    Extra(("qwen3_moe", "deepseek_v3", "llama"), SAVING_MODES, (SMALL_SHARDS,), options=(SAVE_OPTIONS[0],)),
    # A process that is not the main one (told so, or rank 1 of a torch.distributed group, harness.run.distributed),
    # over an earlier sharded save: upstream's cleanup of stale shards must not run there (rank 0's save replaces
    # them).
    Extra(
        ("qwen3_moe", "llama"),
        ("in-memory", "disk-partial"),
        contexts=(Context.OVER_SHARDED,),
        options=(NOT_MAIN_PROCESS, RANK_1),
    ),
    # Pushed to the Hub (a fake one in the cell, harness.run.fake_hub): it must receive exactly what the save wrote,
    # from the main process only, into the repo and as the kind of commit asked; over an earlier save, at least what
    # the save rewrote.
    Extra(
        ("qwen3_moe", "llama"),
        ("in-memory", "disk-partial"),
        options=(PUSH_TO_HUB, PUSH_AS_PR, f"{PUSH_TO_HUB},{NOT_MAIN_PROCESS}", f"{PUSH_TO_HUB},{RANK_1}"),
    ),
    Extra(("llama",), ("disk-partial",), options=(PUSH_TO_HUB,), contexts=(Context.OVER_SHARDED,)),
    Extra(("qwen3_moe", "qwen3_moe_tied", "mixtral", "deepseek_v3", "deepseek_v4"), SAVING_MODES, (PER_TENSOR,)),
    # Device maps users write by hand: a tied head apart from its embedding, routers on disk with their buffers in
    # RAM (or not), the whole model by name, a layer split below the layer level.
    Extra(
        ("qwen3_moe", "qwen3_moe_tied", "deepseek_v3", "deepseek_v4", "llama"),
        tuple(f"{m}{b}" for m in HAND_WRITTEN_MAPS for b in ("", "+offload_buffers")),
        (DEFAULT_SHARDS, SMALL_SHARDS),
    ),
    Extra(
        ("qwen3_moe", "qwen3_moe_tied", "mixtral", "deepseek_v3", "deepseek_v4", "qwen3_moe_sharded", "hrm_text"),
        (*SAVING_MODES, "disk-full", "disk-partial+offload_buffers", "experts-on-disk+offload_buffers"),
        (SPLIT_GROUPS,),
    ),
    # accelerate's own big-model loading: each path with each placement, offload_buffers both ways across the two.
    Extra(
        ("qwen3_moe", "qwen3_moe_tied", "deepseek_v3", "deepseek_v4", "llama"),
        (
            "dispatch-disk-full+offload_buffers",
            "dispatch-disk-partial",
            "dispatch-experts-on-disk+offload_buffers",
            "load_checkpoint-disk-full",
            "load_checkpoint-disk-partial+offload_buffers",
            "load_checkpoint-experts-on-disk",
        ),
    ),
    # accelerate's documented save of a model it offloaded itself (get_state_dict_offloaded_model): the one IUT that
    # reads accelerate's own offload files back through accelerate (the reference reads them its own way, upstream's
    # save crashes first), so a fault of accelerate's offload storage shows nowhere else.
    Extra(
        ("qwen3_moe", "qwen3_moe_tied", "deepseek_v3", "deepseek_v4", "llama", "hrm_text"),
        ("accelerate-disk", "accelerate-disk+offload_buffers", "accelerate-cpu+offload_buffers"),
        impls=("accelerate-state-dict",),
    ),
    # A bf16 checkpoint loaded in float32 (registry.EXTRA_FIXTURES): offloaded weights are cast on every read, as the
    # offload index's dtype says.
    Extra(("qwen3_moe_as_float32",), ("disk-full", "disk-partial+offload_buffers", "experts-on-disk")),
    # The same through accelerate's own loading with `dtype=` (harness.run.accelerate_load): accelerate offloads the
    # checkpoint's bf16 as it is and its hooks cast each read, so the save reads bf16 for float32 parameters.
    Extra(
        ("qwen3_moe_as_float32",),
        ("dispatch-disk-full+offload_buffers", "dispatch-disk-partial", "load_checkpoint-disk-full"),
    ),
    # No offload_folder (a model transformers need not convert): accelerate's loader then has an index and no folder,
    # the one load that kills `OffloadedWeightsLoader.__init__:157:drop-operand:2` and `:157:compare:2`.
    Extra(("llama",), ("map-all-disk+no_offload_folder",)),
    # Into an offload_folder that exists (a TemporaryDirectory, as scripts pass it): transformers' makedirs must
    # accept it (kills `accelerate_disk_offload:478:const:0`, exist_ok=False).
    Extra(("llama", "qwen3_moe"), ("disk-full+existing_offload_folder",)),
    # A pytorch_model.bin checkpoint (registry.EXTRA_FIXTURES): every offloaded weight is rewritten on load.
    Extra(("llama_bin",), ("disk-full", "disk-partial+offload_buffers")),
    # One shard beside an index (registry.EXTRA_FIXTURES), as other tools write checkpoints: the disk offload must
    # find the folder from the index's only file.
    Extra(("llama_one_shard_index",), ("disk-full", "disk-partial+offload_buffers")),
    # A config.json without `architectures` (registry.EXTRA_FIXTURES): the save must name the class it saved. The
    # reference writes it itself, so its cells kill `save_pretrained:3449:remove-stmt:0` (architectures never set:
    # the in-memory save then drops them as well).
    Extra(("llama_no_architectures",), ("in-memory", "disk-partial")),
    # Loaded in float32 and cast back to bf16 before the save (registry.EXTRA_FIXTURES): config.json must name the
    # dtype saved. The reference stamps it itself, so its cell kills `save_pretrained:3445:remove-stmt:0` (the loaded
    # config's float32 kept). In memory only: accelerate refuses to cast an offloaded model.
    Extra(("qwen3_moe_cast_back",), ("in-memory", "from-config")),
    # A 0-d parameter (CLIP's logit_scale) in accelerate's disk offload: accelerate stores it with a shape of its own.
    # The reference only: upstream's save of accelerate's offload is a known crash, and accelerate's own state dict
    # skips a root module's parameters (accelerate_state_dict_skips_root_params.py), logit_scale among them.
    Extra(("gen_clip",), ("accelerate-disk", "accelerate-disk+offload_buffers"), impls=("reference",)),
    # Beside another format's shards (a sharded pytorch_model.bin, Mistral's consolidated-*.safetensors, as Hub
    # snapshots hold them): upstream's cleanup of stale shards must take its own weights name's only.
    Extra(("llama",), ("in-memory", "disk-partial"), contexts=(Context.BESIDE_OTHER_FORMATS,)),
    # The one model class with `_keys_to_ignore_on_save` (MarianMTModel's position tables, registry.EXTRA_FIXTURES):
    # an offloaded save must leave them out too. upstream's default shard size only: at 24KB its offloaded saves
    # split the tensors otherwise, as every model's do.
    Extra(("gen_marian",), ("disk-partial", "disk-full")),
    # The in-memory cells of the generated extras: only there does a cell hold the in-memory save to its fixture
    # (round-trip), which shows a load-and-save conversion fault that every save of the fixture repeats (CLIP's scoped
    # renamings: `WeightTransform._scoped_match`, which the harness's comparison of two saves cannot see).
    Extra(("gen_clip", "gen_marian"), ("in-memory",)),
    # The same for scoped conversions (a sub-model's renamings and converters apply under its prefix only): nine
    # mutants of `_scoped_match`, `WeightTransform.copy`, `rename_source_key` and `revert_weight_conversion` survive
    # every other fixture, where no transform is scoped or no scoped one matches.
    Extra(("gen_inkling2_loop",), ("in-memory",), impls=("upstream",)),
    # A model built by from_config has no recorded conversions, so its save reverts the model type's default mapping
    # (transformers#48075's path): AltCLIP's is one renaming, llama's none, and the branches of
    # revert_weight_conversion that choose between them only run here (six survivors of the full analysis). BERT's
    # modules named `LayerNorm` are what the legacy renamings (gamma/beta), left out of such a revert, would rename.
    Extra(("gen_altclip", "gen_bert"), ("from-config",), impls=("upstream",)),
    Extra(("llama",), ("from-config",), (SMALL_SHARDS,), impls=("upstream",)),
    # The in-memory save's shard plan (judge.shard_plan) where the order of numbered names decides it, and at the
    # exact sizes where one more byte moves a boundary of qwen3_moe's plan: its 16 KiB tensors fill a 16.384KB shard
    # exactly, and two fill 32.768KB, one byte less closes it after one.
    Extra(("llama_12_layers",), ("in-memory",), (SMALL_SHARDS,)),
    Extra(("qwen3_moe_12_layers",), ("in-memory",), (SMALL_SHARDS,), impls=("upstream",)),
    # The same plan in a save that sorts the names itself (the reference, of accelerate's offload): the one cell that
    # kills `dot_natural_key:1506:remove-call:0` and `revert_weight_conversion:2057:remove-call:1` (layers.10 sorted
    # before layers.2 moves a shard boundary), survivors of the full analysis.
    Extra(("llama_12_layers",), ("accelerate-disk+offload_buffers",), (SMALL_SHARDS,), impls=("reference",)),
    Extra(("qwen3_moe",), ("in-memory",), ("16.384KB", "32.767KB", "32.768KB"), impls=("upstream",)),
    # device_map="auto" on a budget: the first half of the model in RAM, the rest on disk, the split inside the layer
    # list (with twelve layers, layers.1 in RAM and layers.10 on disk: a device map's keys must not match by prefix).
    Extra(("llama_12_layers", "qwen3_moe", "deepseek_v3"), ("disk-auto", "disk-auto+offload_buffers")),
    # A variant saved over an earlier sharded save without one: the earlier shards are the user's, not stale ones of
    # this save (upstream's cleanup must match its own variant's names only).
    Extra(
        ("qwen3_moe", "llama"), ("in-memory", "disk-partial"), contexts=(Context.OVER_SHARDED,), options=("variant=v1",)
    ),
    # The in-memory names kept (save_original_format=False) in a sharded offloaded save: the index's weight_map is
    # built another way than with the original format.
    Extra(
        ("qwen3_moe", "llama"),
        ("disk-partial", "disk-full+offload_buffers"),
        (SMALL_SHARDS,),
        options=(SAVE_OPTIONS[1],),
    ),
    # train() / a forward pass in train mode / eval() on the model in memory: whether the step alone changes what is
    # saved (a compressed-tensors model's forward decompresses it), apart from what offloading adds.
    Extra(("llama", "llama_fp8", "qwen3_moe", "deepseek_v3"), ("in-memory+train-eval",)),
    # accelerate's undo of its own offloading before a save from RAM (remove_hook_from_submodules): each hook puts its
    # weights back where init_hook recorded them (original_devices), through set_module_tensor_to_device. Not on a
    # tied model: the undo unties it (accelerate_remove_hooks_unties_tied_weights.py).
    Extra(("llama", "qwen3_moe"), ("accelerate-cpu+offload_buffers+remove-hooks", "accelerate-disk+remove-hooks")),
    # `resize_token_embeddings(len(tokenizer))` with nothing added, as scripts run it unconditionally: on an offloaded
    # model it puts a new hook on the embedding in place of the old (add_hook_to_module's replacing branch, which
    # kills `add_hook_to_module:164:drop-operand:0` and `:169:swap-args:1`); a tied head too. In memory: the control.
    Extra(("llama", "qwen3_moe_tied"), ("disk-full+resize-embeddings", "in-memory+resize-embeddings")),
    # The save's tied-weight handling (issue 22): two tie groups (gen_bert), ties every name of which matches a tie
    # pattern (gen_rt_detr_v2); views of one storage (hrm_text) saved under the in-memory names over small shards,
    # where huggingface_hub plans a storage left uncloned as one item.
    Extra(
        ("hrm_text", "gen_bert", "gen_rt_detr_v2"),
        ("in-memory", "disk-partial"),
        (DEFAULT_SHARDS, SPLIT_GROUPS),  # split-groups: hrm_text's only (the tie fixtures have no fused groups)
        options=(None, "save_original_format=False"),
    ),
)
