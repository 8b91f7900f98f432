"""Repro: the weight conversion transformers registers for MLCD is never applied to an MLCD model.
`get_model_conversion_mapping(MLCDVisionModel(...), add_legacy=False)` is empty, although the checkpoint conversion
mapping has entries for `mlcd` and `mlcd_vision` (the CLIPVisionModel one, `PrefixChange(prefix_to_remove=
"vision_model")`). Visible effect: loading a checkpoint in the `vision_model.*` layout and saving it in memory writes
the keys without `vision_model.` (it still loads, through `base_model_prefix = "vision_model"`), whereas
CLIPVisionModel, which gets that conversion, writes the checkpoint's `vision_model.*` layout back.

Cause (transformers 5.24.0): conversion_mapping.py `_MODEL_TO_CONVERSION_PATTERN` has `"mlcd_vision":
"CLIPVisionModel"` and `"mlcd": "CLIPVisionModel"`, but `get_model_conversion_mapping` looks sub-models up by class
name (`MLCDVisionModel`) and then by `config.model_type`, which is `MLCDVisionConfig.model_type ==
"mlcd_vision_model"`, also for a config.json saying `"model_type": "mlcd"` (AutoConfig maps `mlcd` to
MLCDVisionConfig). Neither key is ever looked up.

Needs torch, transformers, safetensors; the tiny checkpoint is written here. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

from safetensors.torch import load_file, save_file
from transformers import AutoConfig, CLIPVisionConfig, CLIPVisionModel, MLCDVisionConfig, MLCDVisionModel
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, get_model_conversion_mapping

SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
SIZES |= {"image_size": 28, "patch_size": 14}
model = MLCDVisionModel(MLCDVisionConfig(**SIZES))
print(
    f"MLCDVisionConfig.model_type = {MLCDVisionConfig.model_type!r};"
    f" AutoConfig.for_model('mlcd').model_type = {AutoConfig.for_model('mlcd').model_type!r}"
)
for key in ("mlcd", "mlcd_vision", "mlcd_vision_model", "MLCDVisionModel"):
    print(f"get_checkpoint_conversion_mapping({key!r}) = {get_checkpoint_conversion_mapping(key)}")
applied = get_model_conversion_mapping(model, add_legacy=False)
print(f"get_model_conversion_mapping(MLCDVisionModel, add_legacy=False) = {applied}")

with tempfile.TemporaryDirectory() as tmp:
    for cls, config in ((MLCDVisionModel, MLCDVisionConfig(**SIZES)), (CLIPVisionModel, CLIPVisionConfig(**SIZES))):
        ckpt, out = Path(tmp, cls.__name__), Path(tmp, cls.__name__ + "-save")
        cls(config).save_pretrained(ckpt)
        tensors = load_file(ckpt / "model.safetensors")
        # the checkpoint in the vision_model.* layout the registered conversion is for
        save_file({f"vision_model.{k}": v for k, v in tensors.items()}, ckpt / "model.safetensors", {"format": "pt"})
        cls.from_pretrained(ckpt).save_pretrained(out)
        print(
            f"{cls.__name__}: checkpoint {sorted(load_file(ckpt / 'model.safetensors'))[0]!r}"
            f" -> in-memory save {sorted(load_file(out / 'model.safetensors'))[0]!r}"
        )
sys.exit(1 if not applied and get_checkpoint_conversion_mapping("mlcd") else 0)
