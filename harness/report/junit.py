"""JUnit XML: one testcase per cell, so any CI shows cells as tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.report.grid import judged_note
from offload_conformance.harness.results import RunResult


def junit(result: RunResult) -> ET.ElementTree:
    suites = ET.Element("testsuites", name="offload-conformance")
    by_impl: dict[str, list] = {}
    for cell in result.cells:
        by_impl.setdefault(f"{cell.impl}{' @ ' + cell.transformers if cell.transformers else ''}", []).append(cell)
    for impl, cells in by_impl.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"offload-conformance[{impl}]",
            tests=str(len(cells)),
            failures=str(sum(c.outcome is Outcome.FAIL and not c.known_failure for c in cells)),
            errors=str(sum(c.outcome is Outcome.ERROR and not c.known_failure for c in cells)),
            skipped=str(sum(c.outcome is Outcome.UNSUPPORTED or c.known_failure for c in cells)),
        )
        for c in cells:
            case = ET.SubElement(
                suite, "testcase", classname=f"offload_conformance.{c.fixture}", name=c.cell_id, time=f"{c.seconds:.2f}"
            )
            if c.known_failure:
                ET.SubElement(case, "skipped", message=f"known failure: {c.xfail}").text = c.detail
            elif c.outcome is Outcome.FAIL:
                message = f"{', '.join(c.classes)}: {c.detail}{judged_note(c)}"
                ET.SubElement(case, "failure", message=message, type=",".join(c.classes)).text = "\n".join(
                    f"{d.cls}: {d.detail}" for d in c.differences
                )
            elif c.outcome is Outcome.ERROR:
                ET.SubElement(case, "error", message=c.detail + judged_note(c)).text = c.log_tail
            elif c.outcome is Outcome.UNSUPPORTED:
                ET.SubElement(case, "skipped", message=f"unsupported: {c.detail}")
    return ET.ElementTree(suites)


def write(result: RunResult, path: Path) -> None:
    tree = junit(result)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
