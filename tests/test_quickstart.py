"""The shipped quickstart, as the README runs it: every cell x seed once, some pruned, a report
whose tables and figures render, and a second run that trains nothing."""

from __future__ import annotations

import re
from collections import Counter

import optuna
import pandas as pd
import yaml
from markdown_it import MarkdownIt

from ablations.config import validate_space
from ablations.study import open_storage
from tests.conftest import ROOT

QUICKSTART = str(ROOT / "search_spaces" / "quickstart.yaml")


def test_quickstart_sweep_report_and_resume(ablate, tmp_path):
    first = ablate("run", QUICKSTART)
    assert first.code == 0, first.err
    study = optuna.load_study(study_name="quickstart", storage=open_storage(None))
    outcomes = Counter(t.user_attrs["outcome"] for t in study.trials)
    keys = Counter(t.user_attrs["key"] for t in study.trials)
    assert len(keys) == 27 * 3 and set(keys.values()) == {1}
    assert outcomes["pruned"] >= 10 and outcomes["complete"] >= 10 and outcomes["failed"] == 0

    # Real differences between levels: batch norm trains; no norm with N(0, 0.01^2) init does not.
    # (the best epoch of any seed: the median pruner stops most trials after one epoch)
    def best_of(norm: str, init: str) -> float:
        return max(
            record["val_acc"]
            for t in study.trials
            if t.user_attrs["cell"]["model.norm"] == norm and t.user_attrs["cell"]["model.init"] == init
            for record in t.user_attrs["history"]
        )

    assert best_of("batch", "kaiming") > 0.9 and best_of("none", "normal") < 0.2

    report_dir = tmp_path / "reports" / "quickstart"
    markdown = (report_dir / "report.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    pipe_blocks = len(re.findall(r"(?:^\|.*\n)+", markdown, flags=re.M))
    # summary, leaderboard, factor tests, 3 factors, 3 interaction pivots, 3 pruning-aware tables, diagnostics
    assert html.count("<table>") == pipe_blocks == 1 + 1 + 1 + 3 + 3 + 3 + 1, "every pipe table renders"
    images = re.findall(r'<img src="([^"]+)"', html)
    assert {"curves.png", "levels.png", "interactions.png"} <= set(images)
    assert all((report_dir / src).is_file() for src in images)
    assert "norm=batch" in markdown and "| none" in markdown
    tests = markdown.split("## Which factors matter")[1].split("\n## ")[0]
    assert "| norm " in tests and "**yes**" in tests, "the planted-by-nature norm effect is called"

    # No survivorship jump in the learning curves: each point averages only the trials alive at
    # its epoch, n per point is recorded and falls where the pruner stopped trials, and the caption says so.
    curves = pd.read_csv(report_dir / "curves.csv")
    history = pd.read_csv(report_dir / "history.csv")
    alive = history[history["objective"].notna()].groupby(["norm", "epoch"]).size()
    norm = curves[curves["factor"] == "norm"].set_index(["level", "epoch"])["n"]
    assert all(norm[key] == count for key, count in alive.items())
    assert norm[("none", 1)] == 27 and norm[("none", 12)] < 27
    assert "only trials alive at an epoch enter its point" in markdown.lower()
    assert curves["q75"].max() <= 1.0

    # The best cell is a runnable search space; --format html inlines every image.
    best = validate_space(yaml.safe_load((report_dir / "best.yaml").read_text()))
    assert best.factors == {} and best.model.norm == "batch"
    again = ablate("report", "quickstart", "--format", "html", "--reports-dir", str(tmp_path / "again"))
    assert again.code == 0, again.err
    page = (tmp_path / "again" / "quickstart" / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(images) and all(src.startswith("data:image/png;base64,") for src in srcs)
    assert page.count("<table>") == pipe_blocks

    second = ablate("run", QUICKSTART)
    assert second.code == 0 and "ran 0 trial(s)" in second.out
    assert len(optuna.load_study(study_name="quickstart", storage=open_storage(None)).trials) == 81
