"""Save contexts: what the target directory holds before a cell's save.

Every baseline saves into an empty directory; a cell of another context is judged against it (the weight files
and index of the save's own variant must be exactly the baseline's) and on its own terms (harness.judge.context).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

# The variant of the earlier save in `over-earlier-variant`: not one a cell saves with (plan.options).
EARLIER_VARIANT = "earlier"


class Context(StrEnum):
    EMPTY = "empty"  # a fresh directory: every cell before contexts existed
    OVER_SINGLE = "over-earlier-single"  # an earlier single-file save of the same model
    OVER_SHARDED = "over-earlier-sharded"  # an earlier save with every tensor in a shard of its own
    OVER_VARIANT = "over-earlier-variant"  # an earlier sharded save of another variant (its files must survive)
    IN_PLACE = "in-place"  # saved back into the directory the model was loaded from (a copy of the fixture)
    # Other formats' shards, as a Hub snapshot holds them (OTHER_FORMATS): the user's, which the save must leave.
    BESIDE_OTHER_FORMATS = "beside-other-formats"

    @property
    def earlier_options(self) -> tuple[tuple[str, Any], ...] | None:
        """The save options of the earlier save the directory holds (by upstream, in memory); None: no earlier
        save (empty, or the fixture's own files for in-place)."""
        return {
            Context.OVER_SINGLE: (),
            Context.OVER_SHARDED: (("max_shard_size", "per-tensor"),),
            # sharded: upstream's cleanup takes any `model*-XXXXX-of-YYYYY` file for its own stale shard
            Context.OVER_VARIANT: (("max_shard_size", "per-tensor"), ("variant", EARLIER_VARIANT)),
        }.get(self)


CONTEXTS = tuple(Context)

# What `beside-other-formats` puts in the target before the save: the sharded pytorch_model.bin of an older repo and
# Mistral's own consolidated shards, beside which users save the transformers format. Their names match the
# `-XXXXX-of-YYYYY` of a shard, but not the save's weights name. The contents are no checkpoint: nothing may read
# them (from_pretrained prefers the safetensors the save writes), and a save must not delete or change them.
OTHER_FORMATS: dict[str, str] = {
    "pytorch_model-00001-of-00002.bin": "a shard of another format\n",
    "pytorch_model-00002-of-00002.bin": "a shard of another format\n",
    "pytorch_model.bin.index.json": (
        '{"metadata": {}, "weight_map": {"a": "pytorch_model-00001-of-00002.bin", '
        '"b": "pytorch_model-00002-of-00002.bin"}}\n'
    ),
    "consolidated-00001-of-00002.safetensors": "a shard of another format\n",
    "consolidated-00002-of-00002.safetensors": "a shard of another format\n",
}


class UnknownContext(ValueError):
    pass


def by_name(name: str) -> Context:
    try:
        return Context(name)
    except ValueError:
        raise UnknownContext(f"unknown save context {name!r} (known: {', '.join(CONTEXTS)})") from None
