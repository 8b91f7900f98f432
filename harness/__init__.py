"""offload-conformance: does save_pretrained on an offloaded model write the in-memory checkpoint?"""
