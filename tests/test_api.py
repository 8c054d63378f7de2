"""The Python API for notebooks, end to end: `ablations.sweep` runs what `ablate run` runs on the
same storage and returns the trials table; `ablations.make_report` rebuilds the report."""

from __future__ import annotations

import optuna
import pytest
import yaml

import ablations
from ablations.errors import ConfigError, StudyError
from ablations.study import open_storage

SPACE = {
    "name": "notebook",
    "seeds": 2,
    "pruner": {"name": "none"},
    "model": {"width": 16, "depth": 2},
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 128},
    "factors": {"norm": ["none", "batch"]},
}


def test_sweep_of_a_dict_returns_the_table_and_a_second_call_trains_nothing(tmp_path, capsys, ablate):
    table = ablations.sweep(SPACE, wandb="disabled", overrides=["activation=relu,tanh"])
    assert len(table) == 2 * 2 * 2
    assert set(table["outcome"]) == {"complete"} and table["objective"].between(0, 1).all()
    pairs = sorted(zip(table["norm"], table["activation"], table["seed"], strict=True))
    assert pairs == sorted((n, a, s) for n in ("none", "batch") for a in ("relu", "tanh") for s in (0, 1))
    report = (tmp_path / "reports" / "notebook" / "report.md").read_text()
    assert "ablations.sweep({'name': 'notebook'" in report and "overrides=['activation=relu,tanh']" in report

    capsys.readouterr()
    again = ablations.sweep(SPACE, wandb="disabled", overrides=["activation=relu,tanh"], report=False)
    assert "ran 0 trial(s)" in capsys.readouterr().out
    assert again["trial_number"].tolist() == table["trial_number"].tolist()
    assert again["objective"].tolist() == table["objective"].tolist()
    study = optuna.load_study(study_name="notebook", storage=open_storage(None))
    assert len(study.trials) == 8, "every cell x seed ran exactly once"

    # The same study from the shell's side: `ablate run` of the same grid has nothing to do.
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    shell = ablate("run", "space.yaml", "--set", "activation=relu,tanh", "--wandb", "disabled", "--no-report")
    assert shell.code == 0 and "0 trial(s) queued now" in shell.out and "ran 0 trial(s)" in shell.out

    path = ablations.make_report("notebook", format="html", reports_dir=tmp_path / "again")
    assert path == tmp_path / "again" / "notebook" / "report.md" and path.with_suffix(".html").is_file()


def test_bad_input_raises_the_clis_one_line_errors_and_leaves_the_storage_alone(tmp_path):
    with pytest.raises(ConfigError, match=r"^space: factors\.norm: level 'weird'.*allowed: .*batch") as err:
        ablations.sweep({**SPACE, "factors": {"norm": ["none", "weird"]}}, wandb="disabled")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such search space file"):
        ablations.sweep(tmp_path / "nope.yaml")
    with pytest.raises(StudyError, match="no study named 'notebook'"):
        ablations.make_report("notebook")
    assert not (tmp_path / "reports").exists()
