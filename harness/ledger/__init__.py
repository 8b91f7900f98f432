"""The ledger: real upstream bugs, each replayed on a release that had it and one that fixed it.

Flow: `entries` (the data file, validated) → `environments` (which releases to install, with which pins)
→ `replay` (only the named cells, in one installed environment) → `verdicts` (per entry, from the runs)
→ `report` (ledger.json, ledger.md). `nox -s ledger` drives it, installing each environment in turn.
"""
