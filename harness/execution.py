"""What a cell process did, as the runner hands it to the judge: below both, so the judge needs nothing of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offload_conformance.harness.results import Difference, Failure, Lifecycle, SaveCost


@dataclass(frozen=True)
class Execution:
    """What a cell process did: whether it saved, and why not."""

    save_dir: Path
    log_tail: str
    seconds: float
    failure: Failure | None = None  # no checkpoint: the load or save raised, or the process failed
    unsupported: Failure | None = None  # this environment cannot run the cell at all
    hf_device_map: dict[str, Any] | None = None
    cost: SaveCost | None = None
    save_seconds: float | None = None  # the save call alone, timed in the cell
    lifecycle: Lifecycle | None = None  # None: the model was not compared before and after the save
    model_changes: tuple[Difference, ...] = ()  # how the save changed the model (class model-changed)
    parameters: int | None = None  # the loaded model's distinct parameter elements (an index's total_parameters)
    oracles: dict[str, str] | None = None  # Oracle -> OracleVerdict of the alternative oracles; None: not asked
    before: dict[str, str] | None = None  # the target's files before the save (name -> sha256); None: it was empty
    reloaded: str | None = None  # why the save, loaded back with from_pretrained, is not what it wrote; "" if it is
    offload_dir: Path | None = None  # the load's offload_folder, as the load left it
    # sha256 of the loaded model's logits on a fixed input, before the save, in a forked child (lifecycle's forward
    # pass in a cell; asked for in a baseline); None: not asked for, or the forward pass raised.
    logits: str | None = None
    # The Hub calls the save made (harness.run.fake_hub: {"repos": [...], "commits": [...]}); None: not recorded.
    hub: dict[str, list[dict[str, Any]]] | None = None
