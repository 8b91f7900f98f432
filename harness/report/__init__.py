"""Views of a results.json document: terminal, Markdown, HTML, JUnit XML, PNG, history, gate."""

from __future__ import annotations

import os
from pathlib import Path

from offload_conformance.harness.results import RunResult

REPORT_FILES = ("summary.md", "report.html", "junit.xml", "matrix.png")


def write_reports(result: RunResult, out: Path) -> None:
    """summary.md, report.html, junit.xml and (where matplotlib is installed) matrix.png beside
    results.json; the summary also goes to $GITHUB_STEP_SUMMARY when set."""
    from offload_conformance.harness.report import html, junit, markdown, picture

    md = markdown.markdown(result)
    (out / "summary.md").write_text(md)
    drawn = picture.png(result, out / "matrix.png")  # once: the page embeds the same picture
    (out / "report.html").write_text(html.html_report(result, (out / "matrix.png").read_bytes() if drawn else None))
    junit.write(result, out / "junit.xml")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(md + "\n")
