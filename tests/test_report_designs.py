"""Designs beyond the full factorial (grid, config, report), the degradation figure, the
side-by-side report of two studies and the self-contained HTML."""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

import numpy as np
import optuna
import pytest
from markdown_it import MarkdownIt

from ablations.config import validate_space
from ablations.errors import ConfigError
from ablations.grid import DESIGNS, cells_of, grid_fingerprint
from ablations.report import diagnostics_table, write_report
from ablations.study import open_storage
from tests.test_report import add, assert_renders, new_study, summary_rows

FACTORS = {"norm": ["batch", "none", "layer"], "init": ["kaiming", "default"], "dropout": [0.0, 0.3]}


def space(design: Any) -> dict[str, Any]:
    return {"name": "d", "seeds": 2, "design": design, "factors": FACTORS}


def test_designs_are_registered_under_the_names_the_config_accepts():
    assert DESIGNS.names() == ["full", "one_at_a_time", "random"]


def test_one_at_a_time_runs_the_baseline_then_each_change_alone():
    s = validate_space(space({"name": "one_at_a_time", "baseline": {"norm": "none", "dropout": 0.3}}))
    cells = [c.values for c in cells_of(s)]
    base = {"model.norm": "none", "model.init": "kaiming", "model.dropout": 0.3}  # init defaults to its first level
    assert cells[0] == base
    assert cells[1:] == [
        {**base, "model.norm": "batch"},
        {**base, "model.norm": "layer"},
        {**base, "model.init": "default"},
        {**base, "model.dropout": 0.0},
    ]
    assert len(cells_of(validate_space(space("one_at_a_time")))) == 1 + 2 + 1 + 1


def test_random_design_is_a_seeded_subset_of_the_full_grid():
    full = {c.id for c in cells_of(validate_space(space("full")))}
    a = cells_of(validate_space(space({"name": "random", "count": 5, "seed": 1})))
    assert len(a) == len({c.id for c in a}) == 5 and {c.id for c in a} <= full
    again = cells_of(validate_space(space({"name": "random", "count": 5, "seed": 1})))
    other = cells_of(validate_space(space({"name": "random", "count": 5, "seed": 2})))
    assert [c.id for c in again] == [c.id for c in a] != [c.id for c in other]
    assert len(cells_of(validate_space(space({"name": "random", "fraction": 0.25})))) == 3  # 12 cells
    # A huge grid is sampled by index, never listed: 10^12 cells.
    levels = list(range(1, 201))
    huge = {"name": "h", "design": {"name": "random", "count": 4}}
    huge["factors"] = {"train.lr": levels, "train.batch_size": levels, "train.epochs": levels, "model.width": levels}
    assert len(cells_of(validate_space(huge))) == 4  # of 1.6e9 cells


def test_the_fingerprint_includes_the_design_and_full_keeps_its_old_form():
    full = validate_space(space("full"))
    assert full.model_dump(mode="json")["design"] == "full"
    assert grid_fingerprint(full) == grid_fingerprint(
        validate_space({k: v for k, v in space("x").items() if k != "design"})
    )
    prints = {
        grid_fingerprint(validate_space(space(d)))
        for d in ("full", "one_at_a_time", {"name": "random", "count": 3}, {"name": "random", "count": 3, "seed": 1})
    }
    assert len(prints) == 4


@pytest.mark.parametrize(
    ("design", "message"),
    [
        ("fractional", "design.name: unknown design 'fractional'; allowed: full, one_at_a_time, random"),
        ({"name": "random"}, "needs exactly one of `fraction`"),
        ({"name": "random", "count": 3, "fraction": 0.5}, "needs exactly one of `fraction`"),
        ({"name": "random", "fraction": 1.5}, "design.fraction"),
        ({"name": "random", "count": 13}, "design.count: 13 is more than the 12 cells of the full grid"),
        ({"name": "full", "count": 3}, "count does not apply to design 'full'"),
        ({"name": "one_at_a_time", "baseline": {"norm": "group"}}, "design.baseline.norm: 'group' is not one of"),
        ({"name": "one_at_a_time", "baseline": {"depth": 2}}, "design.baseline.depth: not a factor"),
        ({"name": "one_at_a_time", "bogus": 1}, "design.bogus"),
    ],
)
def test_design_errors_name_the_file_the_key_and_the_allowed_values(design, message):
    with pytest.raises(ConfigError) as err:
        validate_space(space(design), source="grid.yaml")
    assert str(err.value).startswith("grid.yaml: ") and message in str(err.value)


def oat_study() -> optuna.Study:
    s = validate_space(space({"name": "one_at_a_time", "baseline": {"norm": "batch"}}))
    study = new_study(FACTORS, seeds=3)
    study.set_user_attr("space", {**study.user_attrs["space"], "design": s.model_dump(mode="json")["design"]})
    effects = {"model.norm": {"none": -0.2, "layer": -0.01}, "model.init": {"default": -0.05}, "model.dropout": {}}
    rng = np.random.default_rng(0)
    for cell, seed in itertools.product(cells_of(s), range(3)):
        final = 0.9 + sum(effects[k].get(v, 0.0) for k, v in cell.values.items()) + rng.normal(0, 0.005)
        add(study, cell.values, seed, "complete", final)
    return study


def test_one_at_a_time_report_shows_the_ablation_table(tmp_path):
    text = write_report(oat_study(), tmp_path).read_text()
    assert "random" not in text.split("## Summary")[1].split("##")[0]
    assert summary_rows(text)["cells"] == "5: norm (3) × init (2) × dropout (2), one at a time from the baseline"
    table = text.split("## Ablation table")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    changes = [row.split("|")[1].strip() for row in rows]
    assert changes == ["**baseline**", "norm=none", "norm=layer", "init=default", "dropout=0.3"]
    none = next(r for r in rows if r.startswith("| norm=none "))
    low, high = map(float, re.search(r"\[([-+.\d]+), ([-+.\d]+)\]", none).groups())
    assert low < -0.2 < high < 0  # the planted cost of dropping batch norm, with its interval
    assert "## Interactions" not in text  # no cell changes two factors: nothing to estimate
    assert_renders(text, tmp_path, min_tables=5)


def test_degradation_plot_when_depth_and_residual_are_factors(tmp_path):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="deep")
    # model.residual arrives with the factor catalog; the report must not need the validator to know it.
    factors = {"model.depth": [2, 8], "model.residual": [False, True]}
    stored = {
        "name": "deep",
        "seeds": 2,
        "factors": factors,
        "train": {"epochs": 5},
        "objective": {"metric": "val_acc"},
    }
    study.set_user_attr("space", stored)
    for depth, residual, seed in itertools.product([2, 8], [False, True], range(2)):
        cell = {"model.depth": depth, "model.residual": residual}
        final = 0.9 - (0.3 if depth == 8 and not residual else 0.0) + 0.01 * seed
        add(study, cell, seed, "complete", final)
    path = write_report(study, tmp_path)
    assert (tmp_path / "degradation.png").read_bytes()[:4] == b"\x89PNG"
    assert "(degradation.png)" in path.read_text()
    # Without the residual factor, no degradation figure (and none left from before).
    write_report(new_study({"depth": [2, 4]}, seeds=1), tmp_path)
    assert not (tmp_path / "degradation.png").exists()


def test_html_report_is_self_contained(tmp_path):
    study = oat_study()
    path = write_report(study, tmp_path, html=True)
    page = (tmp_path / "report.html").read_text()
    markdown_html = MarkdownIt("commonmark").enable("table").render(path.read_text())
    assert page.count("<table>") == markdown_html.count("<table>") >= 5
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    first = base64.b64decode(sources[0].split(",", 1)[1])
    assert first == (tmp_path / "curves.png").read_bytes()


def test_report_two_studies_side_by_side(ablate, tmp_path):
    storage_url = str(tmp_path / "two.journal")
    storage = open_storage(storage_url)
    for name, gap in (("digits", 0.2), ("synthetic", 0.0)):
        space_ = validate_space({"name": name, "seeds": 3, "factors": {"norm": ["none", "batch"]}})
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        study.set_user_attr("space", space_.model_dump(mode="json"))
        study.set_user_attr("command", f"ablate run {name}.yaml")
        for norm, seed in itertools.product(["none", "batch"], range(3)):
            add(study, {"model.norm": norm}, seed, "complete", 0.7 + gap * (norm == "batch") + 0.003 * seed)
    result = ablate("report", "digits", "synthetic", "--storage", storage_url, "--format", "html")
    assert result.code == 0, result.err
    out = tmp_path / "reports" / "digits_vs_synthetic"
    text = (out / "report.md").read_text()
    assert text.startswith("# Ablation comparison: digits vs synthetic")
    tests = text.split("## Which factors matter")[1].split("\n## ")[0]
    norm_row = next(line for line in tests.splitlines() if line.startswith("| norm"))
    assert norm_row.count("**yes**") == 1 and " no" in norm_row  # real in one study, not the other
    assert "ablate run digits.yaml" in text and "ablate run synthetic.yaml" in text
    assert (out / "report.html").is_file() and (out / "trials-digits.csv").is_file()
    assert_renders(text, out, min_tables=4)
    missing = ablate("report", "digits", "nope", "--storage", storage_url)
    assert missing.code == 2 and "no study named 'nope'" in missing.err


def test_diagnostics_are_read_from_the_trials_that_stored_them():
    study = new_study({"norm": ["none", "batch"]}, seeds=1)
    add(study, {"model.norm": "none"}, 0, "complete", 0.8)
    assert diagnostics_table(study).empty and "diagnostics" in diagnostics_table(study).columns
    stored = {"init": {"act_std": [1.0, 0.5]}, "epochs": [{"grad_norm": [0.1, 0.2]}]}
    attrs = {"key": "batch/0", "cell": {"model.norm": "batch"}, "seed": 0, "outcome": "complete"}
    study.add_trial(optuna.trial.create_trial(value=0.9, user_attrs={**attrs, "diagnostics": stored}))
    table = diagnostics_table(study)
    assert list(table["norm"]) == ["batch"] and table["diagnostics"].iloc[0] == stored
