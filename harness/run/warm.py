"""Imported by the fork server (harness.run.cell.PRELOAD): the work every cell would otherwise repeat.

On first use in a process, transformers builds its weight-conversion mapping (about a thousand regular
expressions compiled, ~0.17 s) and imports the modules every model's code imports (generation, masking,
processing); a cell process forked from a server that did both inherits them, and costs its load and save only
(the sweep's cells took ~0.2 s each before). Each step is best effort: on a transformers release that lacks one,
the cells do it themselves, as before.
"""

from __future__ import annotations

import contextlib
import importlib

# Modules a cell's load and save import on first use, measured with sys.modules before and after a cell.
MODULES = (
    "transformers.generation.utils",
    "transformers.masking_utils",
    "transformers.modeling_layers",
    "transformers.processing_utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.processing_auto",
    "transformers.models.auto.image_processing_auto",
    "transformers.models.auto.feature_extraction_auto",
    "transformers.models.auto.video_processing_auto",
    "offload_conformance.harness.plan.impls",
    "offload_conformance.harness.run.cost",
    "psutil",
)


def warm() -> None:
    for name in MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("llama")  # builds and caches the whole mapping, for every model type


warm()
