"""The report, written to its folder and, when optuna-dashboard is installed (the optional
`dashboard` extra), saved as the study's note so it can be read next to the trials there.

optuna-dashboard reads our storage as it is (the factors are the trials' params, the per-epoch
objective their intermediate values); the note is the only thing written for it, and it lives in
the study's system attributes, which nothing else of ours reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def write_study_report(study: optuna.Study, reports_dir: Path, html: bool = False) -> Path:
    """REPORTS_DIR/STUDY/report.md and the rest (see ablations.report), then the dashboard note."""
    from ablations.report import write_report

    path = write_report(study, Path(reports_dir) / study.study_name, html=html)
    save_report_note(study, path)
    return path


def save_report_note(study: optuna.Study, report: Path) -> bool:
    """Save report.md as the study's optuna-dashboard note; False when the dashboard is not installed."""
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return False
    # The dashboard cannot show files next to the report: name where each figure is instead.
    body = IMAGE.sub(lambda m: f"*{m.group(1)}: see `{report.parent / m.group(2)}`*", report.read_text())
    save_note(study, f"*The report of this study, as written to `{report}`.*\n\n{body}")
    return True
