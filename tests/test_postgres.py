"""Multi-machine studies on a real PostgreSQL server (Optuna's RDB storage).

CI (`.ci/run`) starts a throwaway server and sets ABLATE_TEST_POSTGRES_URL; when it is set and the
server cannot be reached these tests fail. Without it (a laptop with no PostgreSQL) they skip; the
same behaviours are tested on the journal storage in test_workers.py either way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState

from ablations.errors import StudyError
from ablations.study import mask_url, open_storage
from tests.workers_helpers import (
    assert_exactly_once,
    finish,
    pid_of,
    running_mid_trial,
    space_text,
    start,
    trials_of,
    wait_for,
)

URL_VARIABLE = "ABLATE_TEST_POSTGRES_URL"


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(f"{URL_VARIABLE} is not set (CI sets it; see .ci/run)")
    try:
        open_storage(url)
    except StudyError as err:
        pytest.fail(f"{URL_VARIABLE} is set but the server cannot be used: {err}")
    return url


def test_three_workers_on_postgres_finish_every_cell_once_when_one_is_sigkilled(tmp_path, pg_url):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    space = tmp_path / "space.yaml"
    space.write_text(space_text(seeds=3, epochs=15, batch=16))
    env = {"ABLATE_STORAGE": pg_url}  # the password stays off the command lines
    first = start("run", str(space), "--study", name, "--no-report", cwd=tmp_path, env=env)
    wait_for("the study to be queued", lambda: trials_of(name, pg_url))
    others = [start("worker", "--study", name, cwd=tmp_path, env=env) for _ in range(2)]
    processes = [first, *others]
    victim = wait_for("a trial mid-training", lambda: running_mid_trial(name, pg_url))
    killed = next(p for p in processes if p.pid == pid_of(victim))
    os.kill(killed.pid, signal.SIGKILL)
    results = {p.pid: finish(p) for p in processes}
    assert results[killed.pid][0] == -signal.SIGKILL
    for pid, (code, out, err) in results.items():
        if pid != killed.pid:
            assert code == 0, out + err
            assert "Traceback" not in err
    trials = assert_exactly_once(name, 12, pg_url)
    lost = next(t for t in trials if t._trial_id == victim._trial_id)  # noqa: SLF001
    assert lost.state == TrialState.FAIL and "reaped" in lost.user_attrs
    status = start("status", name, cwd=tmp_path, env=env)
    code, out, _ = finish(status)
    assert code == 0 and re.search(r"│ complete +│ 12 ", out), out


def test_storage_password_and_wandb_key_are_never_written(tmp_path, pg_url):
    password = pg_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password, "the CI URL carries a password"
    api_key = "f" * 40
    name = f"pg-{uuid.uuid4().hex[:8]}"
    space = tmp_path / "space.yaml"
    space.write_text(space_text(seeds=1, epochs=1))
    env = {"WANDB_API_KEY": api_key}
    args = ("run", str(space), "--study", name, "--storage", pg_url, "--workers", "2", "--wandb", "offline")
    code, out, err = finish(start(*args, cwd=tmp_path, env=env))
    assert code == 0, out + err
    code, report_out, report_err = finish(start("report", name, "--storage", pg_url, cwd=tmp_path))
    assert code == 0
    for text in (out, err, report_out, report_err):
        assert password not in text and api_key not in text
    assert mask_url(pg_url) in out
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert any(p.name == "report.md" for p in written) and any(p.suffix == ".wandb" for p in written)
    for path in written:
        data = path.read_bytes()
        assert password.encode() not in data and api_key.encode() not in data, path
    report = (tmp_path / "reports" / name / "report.md").read_text()
    assert mask_url(pg_url) in report  # the command that made the study, masked
    run_dir = next(p.parent for p in written if p.suffix == ".wandb")
    wandb_cli = str(Path(sys.executable).parent / "wandb")
    shown = subprocess.run(
        [wandb_cli, "leet", "inspect", "--summary", "--json", str(run_dir)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["config"]["storage"] == mask_url(pg_url)
