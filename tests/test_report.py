"""The report on studies with known planted effects: numbers, ranking, counts, files and rendering."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from markdown_it import MarkdownIt
from optuna.trial import TrialState

from ablations.config import validate_space
from ablations.report import history_table, trials_table, write_report
from ablations.report.stats import leaderboard, level_table

EPOCHS = 5
STATE = {
    "complete": TrialState.COMPLETE,
    "early_stopped": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "diverged": TrialState.PRUNED,
}


def new_study(factors: dict[str, list[Any]], seeds: int, metric: str = "val_acc") -> optuna.Study:
    raw = {"name": "planted", "description": "A study with planted effects.", "seeds": seeds}
    raw.update(factors=factors, objective={"metric": metric}, train={"epochs": EPOCHS})
    space = validate_space(raw)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="planted", direction=space.objective.direction)
    study.set_user_attr("space", space.model_dump(mode="json"))
    return study


def add(
    study: optuna.Study,
    cell: dict[str, Any],
    seed: int,
    outcome: str,
    final: float = 0.5,
    epochs: int = EPOCHS,
    extra_keys: dict[str, Any] | None = None,
) -> None:
    """One trial as the runner stores it; the objective ramps linearly up to `final` at the last epoch."""
    metric = study.user_attrs["space"]["objective"]["metric"]
    cell_id = "-".join(str(v) for v in cell.values())
    history = []
    for epoch in range(1, epochs + 1):
        value = final * (0.5 + 0.5 * epoch / epochs)
        record = {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "train_acc": 0.5,
            "val_loss": 1.0,
            "val_acc": 0.5,
        }
        history.append({**record, metric: value, "seconds": 0.1, **(extra_keys or {})})
    if outcome == "diverged":
        history[-1].update(train_loss=math.nan, val_loss=math.inf)
    attrs = {"key": f"{cell_id}/{seed}", "cell_id": cell_id, "cell": cell, "seed": seed, "outcome": outcome}
    attrs.update(history=history, epochs_run=epochs, wall_time=1.5)
    if outcome == "complete":
        attrs["test_acc"] = 0.9
    if outcome == "failed":
        attrs["error"] = "RuntimeError: CUDA out of memory | tried to allocate"
    # The runner reports no objective for a diverged epoch.
    reported = history[:-1] if outcome == "diverged" else history
    state = STATE.get(outcome, TrialState.FAIL)
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=final if state == TrialState.COMPLETE else None,
            intermediate_values={h["epoch"]: h[metric] for h in reported},
            user_attrs=attrs,
        )
    )


@pytest.fixture
def planted() -> tuple[optuna.Study, dict[tuple[str, str, int], float]]:
    """norm=batch is +0.1 over none and init=kaiming +0.03 over default, plus seed noise (sd 0.01)."""
    study = new_study({"norm": ["none", "batch"], "init": ["default", "kaiming"]}, seeds=3)
    rng = np.random.default_rng(0)
    finals = {}
    for norm, init, seed in itertools.product(["none", "batch"], ["default", "kaiming"], range(3)):
        final = 0.7 + 0.1 * (norm == "batch") + 0.03 * (init == "kaiming") + rng.normal(0, 0.01)
        finals[norm, init, seed] = final
        add(study, {"model.norm": norm, "model.init": init}, seed, "complete", final)
    return study, finals


def test_trials_table_has_one_row_per_key_with_factor_columns(planted):
    study, finals = planted
    table = trials_table(study)
    assert len(table) == 12 and table["key"].is_unique
    row = table[(table["norm"] == "batch") & (table["init"] == "kaiming") & (table["seed"] == 2)].iloc[0]
    assert row["cell"] == "norm=batch init=kaiming"
    assert row["objective"] == pytest.approx(finals["batch", "kaiming", 2])
    assert row["epochs_run"] == EPOCHS and row["test_acc"] == 0.9
    assert len(history_table(study)) == 12 * EPOCHS


def test_retried_key_counts_once_preferring_the_finished_attempt():
    study = new_study({"norm": ["none", "batch"]}, seeds=1)
    add(study, {"model.norm": "none"}, 0, "failed")
    add(study, {"model.norm": "none"}, 0, "complete", 0.8)
    add(study, {"model.norm": "none"}, 0, "failed")  # a stray retry must not hide the result
    add(study, {"model.norm": "batch"}, 0, "failed")
    add(study, {"model.norm": "batch"}, 0, "failed")
    table = trials_table(study)
    assert list(table["key"]) == ["none/0", "batch/0"]
    assert list(table["trial_number"]) == [1, 4]
    assert list(table["outcome"]) == ["complete", "failed"]


def test_factor_table_ranks_planted_level_first_with_the_right_difference(planted):
    study, finals = planted
    table = level_table(trials_table(study), "norm", ["none", "batch"], "maximize")
    assert list(table["level"]) == ["batch", "none"]
    batch = [v for (n, _, _), v in finals.items() if n == "batch"]
    none = [v for (n, _, _), v in finals.items() if n == "none"]
    assert table["n"].tolist() == [6, 6]
    assert table["mean"].tolist() == pytest.approx([np.mean(batch), np.mean(none)])
    assert table["delta"].iloc[1] == pytest.approx(np.mean(none) - np.mean(batch))
    assert table["delta_low"].iloc[1] < -0.1 < table["delta_high"].iloc[1] < 0  # covers the truth, excludes 0
    assert table["ci_low"].iloc[0] < np.mean(batch) < table["ci_high"].iloc[0]
    assert table["std"].iloc[0] == pytest.approx(np.std(batch, ddof=1))


def test_leaderboard_follows_direction():
    for metric, best_first in (
        ("val_acc", ["batch", "layer", "none"]),
        ("val_loss", ["none", "layer", "batch"]),
    ):
        study = new_study({"norm": ["none", "batch", "layer"]}, seeds=2, metric=metric)
        for norm, final in (("none", 0.2), ("batch", 0.6), ("layer", 0.4)):
            for seed in range(2):
                add(study, {"model.norm": norm}, seed, "complete", final + 0.01 * seed)
        board = leaderboard(trials_table(study), study.user_attrs["space"]["objective"]["direction"])
        assert list(board["cell"]) == [f"norm={n}" for n in best_first]
        assert board["mean"].iloc[0] == pytest.approx({"val_acc": 0.605, "val_loss": 0.205}[metric])


def test_pruned_trials_are_censored_and_the_leaderboard_names_each_budget():
    study = new_study({"norm": ["none", "batch", "layer"]}, seeds=2)
    add(study, {"model.norm": "none"}, 0, "pruned", final=0.4, epochs=2)
    add(study, {"model.norm": "none"}, 1, "pruned", final=0.5, epochs=2)
    add(study, {"model.norm": "batch"}, 0, "diverged", final=0.9, epochs=3)
    add(study, {"model.norm": "batch"}, 1, "complete", final=0.95)
    add(study, {"model.norm": "layer"}, 0, "complete", final=0.6)
    add(study, {"model.norm": "layer"}, 1, "complete", final=0.7)
    table = trials_table(study)
    assert table["objective"].iloc[0] == pytest.approx(0.4)  # the value it stopped at, kept in the table
    assert table["epochs_run"].tolist() == [2, 2, 3, EPOCHS, EPOCHS, EPOCHS]
    assert math.isnan(table["val_loss"].iloc[2])  # inf at divergence is shown as missing
    board = leaderboard(table, "maximize", epochs=EPOCHS)
    # layer trained in every seed: first, although batch's surviving seed scored higher; the pruned
    # cell is scored at the epoch it stopped (said in `budget`), never averaged with final values.
    assert board["cell"].tolist() == ["norm=layer", "norm=batch", "norm=none"]
    assert board["n"].tolist() == [2, 1, 0]
    assert board["budget"].tolist() == [f"final (ep {EPOCHS})", f"final (ep {EPOCHS})", "ep 2 (pruned)"]
    assert board["mean"].iloc[2] == pytest.approx(0.45) and board["broke"].tolist() == [0, 1, 0]
    levels = level_table(table, "norm", ["none", "batch", "layer"], "maximize")
    assert levels.set_index("level").loc["none", "n"] == 0  # censored: counted, not scored


def summary_rows(text: str) -> dict[str, str]:
    section = text.split("## Summary")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1] for row in cells[2:]}


def test_summary_counts_outcomes(tmp_path):
    study = new_study({"norm": ["none", "batch"]}, seeds=4)
    add(study, {"model.norm": "none"}, 0, "complete", 0.8)
    add(study, {"model.norm": "none"}, 1, "failed")
    add(study, {"model.norm": "none"}, 1, "complete", 0.7)  # retry of a failure
    add(study, {"model.norm": "none"}, 2, "pruned", 0.5, epochs=2)
    add(study, {"model.norm": "batch"}, 0, "diverged", 0.5, epochs=3)
    add(study, {"model.norm": "batch"}, 1, "failed")
    study.enqueue_trial({}, user_attrs={"key": "batch/2", "cell": {"model.norm": "batch"}, "seed": 2})
    text = write_report(study, tmp_path).read_text()
    rows = summary_rows(text)
    assert rows["cells"].startswith("2:") and rows["seeds per cell"] == "4"
    assert rows["trials in the grid"].startswith("8")
    assert [rows[o] for o in ("complete", "pruned", "diverged", "failed")] == ["2", "1", "1", "1"]
    assert rows["running or queued"] == "1" and rows["not yet run"] == "2"
    assert rows["epochs trained"].startswith(f"{EPOCHS * 2 + 2 + 3 + EPOCHS} of {8 * EPOCHS} ")
    assert "pruned trials are censored: counted, not scored" in text
    assert "CUDA out of memory \\| tried to allocate" in text  # the pipe in the error must not split the row


def test_write_report_files_round_trip_and_render(planted, tmp_path):
    study, finals = planted
    study.set_user_attr("command", "ablate run search_spaces/planted.yaml")
    path = write_report(study, tmp_path / "out")
    assert path == tmp_path / "out" / "report.md"
    text = path.read_text()
    assert text.startswith("# Ablation report: planted\n\nA study with planted effects.")

    table = trials_table(study)
    pd.testing.assert_frame_equal(pd.read_csv(path.parent / "trials.csv"), table, check_dtype=False)
    assert len(pd.read_csv(path.parent / "history.csv")) == 12 * EPOCHS

    # The best cell leads the leaderboard; the factor table shows the planted gap.
    board = text.split("## Leaderboard")[1]
    assert board.index("norm=batch init=kaiming") < board.index("norm=none init=default")
    norm_section = text.split("### norm")[1].split("###")[0]
    gap = np.mean([v for k, v in finals.items() if k[0] == "none"]) - np.mean(
        [v for k, v in finals.items() if k[0] == "batch"]
    )
    none_row = next(line for line in norm_section.splitlines() if line.startswith("| none "))
    assert re.search(rf"\|\s*{re.escape(f'{gap:+.4f}')} \|", none_row)
    assert "ablate run search_spaces/planted.yaml" in text.split("## Reproduce")[1]

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(not Path(link).is_absolute() for link in links)
    assert {"curves.png", "levels.png"} <= set(links)
    for link in links:
        assert (path.parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert_renders(text, path.parent, min_tables=4)


def assert_renders(text: str, root: Path, min_tables: int) -> None:
    """Every pipe block becomes a <table>, and every <img> points at a file next to the report."""
    html = MarkdownIt("commonmark").enable("table").render(text)
    blocks = len(re.findall(r"(?:^\|.*\n)+", text, flags=re.M))
    assert html.count("<table>") == blocks >= min_tables
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (root / src).is_file()


def test_report_is_a_pure_function_of_the_study(planted, tmp_path):
    study, _ = planted
    a, b = write_report(study, tmp_path / "a"), write_report(study, tmp_path / "b")
    assert a.read_text() == b.read_text()
    assert (a.parent / "curves.png").read_bytes() == (b.parent / "curves.png").read_bytes()


def test_empty_study_gives_a_readable_report(tmp_path):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="empty")
    text = write_report(study, tmp_path).read_text()
    assert text.startswith("# Ablation report: empty")
    assert "no trial has finished yet" in text
    assert "was not recorded" in text
    assert not list(tmp_path.glob("*.png"))
    assert_renders(text, tmp_path, min_tables=1)


def test_all_failed_study_says_so(tmp_path):
    study = new_study({"norm": ["none", "batch"]}, seeds=1, metric="val_loss")
    add(study, {"model.norm": "none"}, 0, "failed")
    add(study, {"model.norm": "batch"}, 0, "failed")
    text = write_report(study, tmp_path).read_text()
    assert "every finished trial failed or diverged" in text
    assert "## Leaderboard" not in text
    assert summary_rows(text)["failed"] == "2"
    assert "## Failed trials" in text and text.count("RuntimeError: CUDA out of memory") == 2
    assert not list(tmp_path.glob("*.png"))
    assert_renders(text, tmp_path, min_tables=2)


def test_early_stopped_trials_are_scored_and_history_keeps_every_numeric_key(tmp_path):
    study = new_study({"norm": ["none", "batch"]}, seeds=1)
    add(study, {"model.norm": "none"}, 0, "complete", 0.8, extra_keys={"lr": 0.1, "grad_norm": 2.0, "note": "x"})
    add(study, {"model.norm": "batch"}, 0, "early_stopped", 0.9, epochs=3)  # its value: the best epoch's
    table = trials_table(study)
    early = table[table["outcome"] == "early_stopped"].iloc[0]
    assert early["objective"] == pytest.approx(0.9) and early["epochs_run"] == 3
    history = history_table(study)
    assert {"lr", "grad_norm"} <= set(history.columns) and "note" not in history.columns
    assert history.loc[history["trial_number"] == 0, "lr"].tolist() == pytest.approx([0.1] * EPOCHS)
    assert history.loc[history["trial_number"] == 1, "lr"].isna().all()
    text = write_report(study, tmp_path).read_text()
    assert summary_rows(text)["early stopped"] == "1"
    assert leaderboard(table, "maximize")["n"].tolist() == [1, 1]  # both scored at the final budget
