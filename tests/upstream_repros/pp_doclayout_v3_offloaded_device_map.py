"""Repro: a PP-DocLayoutV3 checkpoint loads in memory but not disk-offloaded:
`from_pretrained(..., device_map="auto", max_memory={"cpu": 1}, offload_folder=...)` raises
`IndexError: list index out of range` while computing the device map. The same happens with
`transformers.integrations.accelerate.infer_auto_device_map` on a meta-device model (and with accelerate's own
`infer_auto_device_map`, which has the same logic).

Cause (transformers 5.24.0): `PPDocLayoutV3Model._tied_weights_keys` ties `decoder.class_embed` to `enc_score_head`
and `decoder.bbox_embed` to `enc_bbox_head`: two modules that come before `model.decoder` in the module order are
each tied to a parameter inside it. `integrations/accelerate.infer_auto_device_map`, once the model has to be split,
treats `model.enc_score_head`, finds its tie into `model.decoder`, places the whole `model.decoder` with it and
removes it from the modules left to treat. It then treats `model.enc_bbox_head`, whose tied parameter
`model.decoder.bbox_embed.*` now lies in no module left to treat, and `get_module_size_with_ties` indexes `[0]` of
an empty list.

Needs torch, transformers, accelerate; the tiny checkpoint is written here. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
import traceback
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from transformers import AutoModelForObjectDetection, HGNetV2Config, PPDocLayoutV3Config
from transformers.integrations.accelerate import infer_auto_device_map

W = 32
backbone = HGNetV2Config(
    arch="L",
    return_idx=[0, 1, 2, 3],
    freeze_stem_only=True,
    freeze_at=0,
    freeze_norm=True,
    lr_mult_list=[0, 0.05, 0.05, 0.05, 0.05],
    out_features=["stage1", "stage2", "stage3", "stage4"],
    embedding_size=W,
    depths=[1, 1, 1, 1],
    hidden_sizes=[W] * 4,
    stem_channels=[3, W, W],
    stage_in_channels=[W] * 4,
    stage_mid_channels=[W] * 4,
    stage_out_channels=[W] * 4,
    stage_num_blocks=[1, 1, 3, 1],
)
config = PPDocLayoutV3Config(
    backbone_config=backbone,
    encoder_hidden_dim=W,
    encoder_in_channels=[W] * 3,
    encoder_ffn_dim=64,
    encoder_attention_heads=2,
    encode_proj_layers=[1],
    mask_feature_channels=[W, W],
    x4_feat_dim=W,
    d_model=W,
    decoder_in_channels=[W] * 3,
    decoder_ffn_dim=64,
    decoder_layers=2,
    decoder_attention_heads=2,
)


def where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return (
        f"{type(exc).__name__}: {exc} (in {Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.name})"
    )


bug = False
with torch.device("meta"):
    meta = AutoModelForObjectDetection.from_config(config)
print("PPDocLayoutV3Model._tied_weights_keys:", meta.model._tied_weights_keys)
try:
    infer_auto_device_map(meta, max_memory={"cpu": 1}, no_split_module_classes=meta._no_split_modules)
    print("infer_auto_device_map on the meta model: ok")
except Exception as e:
    print(f"infer_auto_device_map on the meta model raised {where(e)}")
    bug = True

torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    AutoModelForObjectDetection.from_config(config).save_pretrained(ckpt)
    AutoModelForObjectDetection.from_pretrained(ckpt)  # in memory: loads
    print("in-memory from_pretrained: ok")
    try:
        AutoModelForObjectDetection.from_pretrained(
            ckpt, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "offload")
        )
        print("disk-offloaded from_pretrained: ok")
    except Exception as e:
        print(f"disk-offloaded from_pretrained raised {where(e)}")
        bug = True
sys.exit(1 if bug else 0)
