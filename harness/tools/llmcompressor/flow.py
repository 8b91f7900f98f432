"""The two savers a cell process runs (harness.run.cell resolves them as `package.module:function`): each quantizes
the loaded model data-free with llm-compressor's `oneshot`, then saves it compressed.

- `upstream`: `model.save_pretrained(dir, save_compressed=True)`, the wrapper `oneshot` installs
  (llmcompressor.transformers.compression.compressed_tensors_utils.modify_save_pretrained).
- `reference`: the same wrapper's steps, in its order, with our reference save where it calls transformers' own.

For the schemes of ROUND_TRIP_SCHEMES each then loads its save back with transformers (roundtrip.py).
"""

from __future__ import annotations

from typing import Any

from offload_conformance.harness.plan.impls import resolve
from offload_conformance.harness.tools.llmcompressor import roundtrip
from offload_conformance.harness.tools.llmcompressor.plan import ROUND_TRIP_SCHEMES, scheme_by_name

# The wrapper's own default: one shard for any model of ours (and not transformers' 50GB).
WRAPPER_MAX_SHARD_SIZE = "20GB"


def quantize(model: Any, scheme: str) -> None:
    """Data-free oneshot: no calibration set (llm-compressor picks its DataFreePipeline)."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    oneshot(model=model, recipe=QuantizationModifier(**scheme_by_name(scheme).modifier_kwargs()))


def upstream(model: Any, save_directory: str, *, scheme: str) -> None:
    dtype, source = model.dtype, model.name_or_path
    quantize(model, scheme)
    model.save_pretrained(save_directory, save_compressed=True)
    if scheme in ROUND_TRIP_SCHEMES:
        roundtrip.record(save_directory, source, dtype)


def reference(model: Any, save_directory: str, *, scheme: str) -> None:
    dtype, source = model.dtype, model.name_or_path
    quantize(model, scheme)
    save_compressed(model, save_directory)
    if scheme in ROUND_TRIP_SCHEMES:
        roundtrip.record(save_directory, source, dtype)


def save_compressed(model: Any, save_directory: str) -> None:
    """llm-compressor 0.14's save_pretrained_wrapper (save_compressed=True, one process), our save inside.

    The wrapper compresses the model in place (weight -> weight_packed/weight_scale, or float8 + scale), re-ties
    identical embeddings, converts compressed-tensors' offloading back to accelerate hooks with an hf_device_map
    (every module, 'cpu' even when nothing is offloaded), saves, then rewrites config.json from the source config
    with the compressor's quantization_config, writes recipe.yaml, and converts the offloading back.
    """
    from compressed_tensors import ModelCompressor
    from compressed_tensors.offload import from_accelerate, to_accelerate
    from compressed_tensors.utils import save_mtp_tensors_to_checkpoint
    from llmcompressor.pytorch.model_load.helpers import copy_python_files_from_model_cache
    from llmcompressor.transformers.compression.compressed_tensors_utils import (
        _retie_embeddings,
        resave_config,
        update_and_save_recipe,
    )

    compressor = ModelCompressor.from_pretrained_model(model, quantization_format=None)
    compressor.compress_model(model, skip_compressed=True)
    _retie_embeddings(model)
    to_accelerate(model)
    # Through the IUT resolver, as `--impl reference` loads it: harness modules do not import the reference.
    resolve("reference")(model, save_directory, max_shard_size=WRAPPER_MAX_SHARD_SIZE)
    resave_config(model.config, save_directory)
    compressor.update_config(save_directory)
    update_and_save_recipe(model.name_or_path, save_directory)
    copy_python_files_from_model_cache(model, save_directory)
    text_config = model.config.get_text_config()
    if getattr(text_config, "num_mtp_layers", 0) or getattr(text_config, "mtp_num_hidden_layers", 0):
        save_mtp_tensors_to_checkpoint(model.name_or_path, save_directory)  # DeepSeek-V3 says 1; our fixture has none
    from_accelerate(model)
