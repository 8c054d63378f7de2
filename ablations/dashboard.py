"""The report, written to its folder and, when optuna-dashboard is installed (the optional
`dashboard` extra), saved as the study's note so it can be read next to the trials there.

optuna-dashboard reads our storage as it is (the factors are the trials' params, the per-epoch
objective their intermediate values); the note is the only thing written for it, and it lives in
the study's system attributes, which nothing else of ours reads.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import optuna

from ablations.plugins.imports import installed_file

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def write_study_report(study: optuna.Study, reports_dir: Path, html: bool = False) -> Path:
    """REPORTS_DIR/STUDY/report.md and the rest (see ablations.report), then the dashboard note."""
    from ablations.report import write_report

    path = write_report(study, Path(reports_dir) / study.study_name, html=html)
    save_report_note(study, path)
    return path


def save_report_note(study: optuna.Study, report: Path) -> bool:
    """Save report.md as the study's optuna-dashboard note; False when the dashboard is not installed."""
    save_note = _dashboard_save_note()
    if save_note is None:
        return False
    # The dashboard cannot show files next to the report: name where each figure is instead.
    body = IMAGE.sub(lambda m: f"*{m.group(1)}: see `{report.parent / m.group(2)}`*", report.read_text())
    save_note(study, f"*The report of this study, as written to `{report}`.*\n\n{body}")
    return True


@functools.cache
def _dashboard_save_note() -> Callable[[optuna.Study, str], None] | None:
    """optuna-dashboard's own `save_note`, or None when it is not installed.

    Importing the package starts its web app's imports and, through optuna.importance, scikit-learn:
    about 1 s at the end of every sweep. The module `save_note` lives in needs only optuna, so it
    is loaded on its own; should the package's layout change, the package import still works."""
    note_module = installed_file("optuna_dashboard", "_note.py")
    if note_module is not None:
        try:
            spec = importlib.util.spec_from_file_location("ablations._dashboard_note", note_module)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module.save_note
        except Exception:  # noqa: BLE001, S110 - any surprise in the shortcut: take the documented way
            pass
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return None
    return save_note
