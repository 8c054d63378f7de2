"""A finished study watched in the real optuna-dashboard (the `dashboard` extra), as the README
tells: its HTTP API gives back every trial with its factors as params, its per-epoch objective,
its state, and the markdown report as the study's note."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pytest

from ablations.study import open_storage

pytest.importorskip("optuna_dashboard", reason="the dashboard extra (in the test extra, so CI has it)")

SPACE = """
name: watched
seeds: 2
pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}
model: {width: 16, depth: 2}
train: {epochs: 3, lr: 0.05, batch_size: 128}
factors:
  norm: [none, batch]
  init: [default, normal]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def dashboard(storage: str, port: int):
    """`optuna-dashboard STORAGE --host 127.0.0.1 --port PORT`: the installed command's own entry point."""
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="optuna-dashboard")
    module, func = entry.value.split(":")
    code = f"import sys; sys.argv[0] = 'optuna-dashboard'; from {module} import {func}; {func}()"
    args = [sys.executable, "-c", code, storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90  # it imports optuna, scikit-learn and plotly first
        while True:
            try:
                get(f"http://127.0.0.1:{port}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"optuna-dashboard did not start: {proc.communicate()[0][-2000:]}") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_optuna_dashboard_shows_the_factors_the_epochs_the_states_and_the_report(ablate, write_space, tmp_path):
    assert ablate("run", str(write_space(SPACE)), "--wandb", "disabled").code == 0
    stored = {t.number: t for t in optuna.load_study(study_name="watched", storage=open_storage(None)).trials}
    assert len(stored) == 8

    with dashboard("runs/ablate.journal", free_port()) as url:
        (summary,) = [s for s in get(f"{url}/api/studies")["study_summaries"] if s["study_name"] == "watched"]
        detail = get(f"{url}/api/studies/{summary['study_id']}")

    assert len(detail["trials"]) == 8
    for shown in detail["trials"]:
        trial = stored[shown["number"]]
        assert shown["state"] == trial.state.name.capitalize()
        assert {p["name"]: p["param_external_value"] for p in shown["params"]} == {
            "norm": trial.user_attrs["cell"]["model.norm"],
            "init": trial.user_attrs["cell"]["model.init"],
        }
        epochs = {v["step"]: v["value"] for v in shown["intermediate_values"]}
        assert list(epochs) == list(range(1, trial.user_attrs["epochs_run"] + 1))
        assert all(math.isclose(epochs[s], v) for s, v in trial.intermediate_values.items())
    assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned"}
    assert sorted(p["name"] for p in detail["union_search_space"]) == ["init", "norm"]

    note = detail["note"]["body"]
    report = (tmp_path / "reports" / "watched" / "report.md").read_text()
    assert note.startswith("*The report of this study, as written to `reports/watched/report.md`.*")
    assert "# Ablation report: watched" in note and "## Which factors matter" in note
    assert "curves.png" in report and "see `reports/watched/curves.png`" in note and "![" not in note


def test_the_note_is_saved_without_importing_the_dashboard_package_and_reads_back_through_it(tmp_path):
    """The note is written by optuna-dashboard's own note module, loaded alone: the package import
    (its web app and scikit-learn) stays out of every sweep, and the dashboard reads the note back."""
    report = tmp_path / "report.md"
    report.write_text("# Ablation report: noted\n\n![Curves](curves.png)\n")
    code = f"""
import sys, optuna
from pathlib import Path
from ablations.dashboard import save_report_note
study = optuna.create_study(study_name="noted", storage="sqlite:///{tmp_path / "db.sqlite"}")
assert save_report_note(study, Path({str(report)!r})) and save_report_note(study, Path({str(report)!r}))
print("imported" if "optuna_dashboard" in sys.modules else "not imported")
from optuna_dashboard import get_note
print(get_note(study))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    first, note = out.split("\n", 1)
    assert first == "not imported"
    assert note.startswith(f"*The report of this study, as written to `{report}`.*")
    assert "# Ablation report: noted" in note and f"*Curves: see `{tmp_path / 'curves.png'}`*" in note
