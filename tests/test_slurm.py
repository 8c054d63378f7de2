"""The README's SLURM array job, submitted to a real one-node SLURM cluster against PostgreSQL,
with one task cancelled (`scancel`) mid-trial: every cell x seed still ends finished exactly once.

CI (`.ci/slurm.sh`) starts the cluster and sets ABLATE_TEST_SLURM=1; without a cluster (a laptop,
or a CI machine where it could not start, which .ci/run reports) the test skips."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT
from tests.test_postgres import pg_url  # noqa: F401 - the fixture
from tests.workers_helpers import DEADLINE, assert_exactly_once, pid_of, running_mid_trial, space_text, wait_for

# What CI changes in the README's submit command: a tiny space, 4 tasks of one core, no GPU.
README_SUBMIT = "sbatch --array=0-7 --cpus-per-task=8 --gres=gpu:1 ablate.sbatch search_spaces/quickstart.yaml"
CI_SUBMIT = ["sbatch", "--parsable", "--array=0-3", "--cpus-per-task=1", "ablate.sbatch", "space.yaml"]


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```\n<!-- /{marker} -->", text, re.DOTALL)
    assert block, f"README.md has no <!-- {marker} --> block"
    return block.group(1)


@pytest.fixture
def slurm() -> None:
    if os.environ.get("ABLATE_TEST_SLURM") != "1":
        why = os.environ.get("ABLATE_TEST_SLURM_SKIPPED", "ABLATE_TEST_SLURM is not set (CI sets it; see .ci/slurm.sh)")
        pytest.skip(f"no SLURM cluster: {why}")


def squeue(job: str) -> list[str]:
    shown = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True, check=True)
    return shown.stdout.split("\n")[:-1]


def array_task_of(pid: int) -> str:
    """The array task (`JOB_TASK`, as scancel takes it) a process runs in, from its environment."""
    pairs = (v.decode().partition("=") for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    environ = {key: value for key, _, value in pairs}
    return f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"


def test_the_readme_array_job_finishes_every_cell_once_when_a_task_is_cancelled_mid_trial(tmp_path, pg_url, slurm):  # noqa: F811
    assert readme_block("slurm-submit").splitlines()[-1] == README_SUBMIT
    (tmp_path / "ablate.sbatch").write_text(readme_block("slurm-job"))
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    (tmp_path / "space.yaml").write_text(space_text(name=name, seeds=2, epochs=15, batch=16))
    # The tasks get this environment, as they would get a user's shell's (sbatch --export=ALL).
    env = {**os.environ, "ABLATE_STORAGE": pg_url, "WANDB_MODE": "disabled"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    submitted = subprocess.run(CI_SUBMIT, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    array = submitted.stdout.strip()

    victim = wait_for("a trial mid-training", lambda: running_mid_trial(name, pg_url))
    cancelled = subprocess.run(["scancel", array_task_of(pid_of(victim))], capture_output=True, text=True)
    assert cancelled.returncode == 0 and not cancelled.stderr, cancelled.stderr
    end = time.monotonic() + DEADLINE
    while squeue(array) and time.monotonic() < end:
        time.sleep(1)
    assert not squeue(array), f"the array job did not finish within {DEADLINE:.0f}s"

    logs = {p.name: p.read_text() for p in tmp_path.glob("slurm-*.out")}
    assert len(logs) == 4 and not any("Traceback" in text for text in logs.values()), logs
    trials = assert_exactly_once(name, 8, pg_url)
    stopped = next(t for t in trials if t._trial_id == victim._trial_id)  # noqa: SLF001
    assert stopped.state == TrialState.FAIL and "interrupted" in stopped.user_attrs["error"]
    rerun = [t for t in trials if t.user_attrs["key"] == victim.user_attrs["key"] and t.state != TrialState.FAIL]
    assert len(rerun) == 1 and rerun[0].user_attrs["outcome"] == "complete"
    assert rerun[0].user_attrs["worker"] != victim.user_attrs["worker"]  # another task took it over
