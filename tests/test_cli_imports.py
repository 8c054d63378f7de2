"""The CLI answers at once: commands that train nothing never import torch and friends.

Checked as the issue asks, with `python -X importtime` in a fresh process: its stderr lists every
module the command imported."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import TINY_SPACE

HEAVY = {"torch", "torchvision", "pandas", "matplotlib", "wandb", "sklearn"}


def imported_by(*args: str, cwd: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `ablate ARGS` in a new interpreter; return the result and the top-level packages it imported."""
    code = f"import sys; from ablations.cli import main; main({list(args)!r})"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", result.stderr, flags=re.M)
    assert "click" in {n.split(".")[0] for n in names}, "importtime listed the imports"
    return result, {n.split(".")[0] for n in names}


def test_help_and_the_parsing_of_every_command_import_nothing_heavy(tmp_path):
    for args in (["--help"], ["run", "--help"], ["report", "--help"], ["check", "--help"], ["status", "--help"]):
        result, modules = imported_by(*args, cwd=str(tmp_path))
        assert "Usage:" in result.stdout, args
        assert not modules & HEAVY, (args, modules & HEAVY)


def test_status_and_report_answer_from_the_storage_alone(ablate, write_space, tmp_path):
    assert ablate("run", str(write_space(TINY_SPACE)), "--no-report").code == 0
    result, modules = imported_by("status", "tiny", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"complete\s*│\s*8\b", result.stdout), result.stdout
    assert not modules & HEAVY, modules & HEAVY
    # The report needs pandas, matplotlib and scipy, but not the models: no torch.
    report, modules = imported_by("report", "tiny", cwd=str(tmp_path))
    assert report.returncode == 0 and (tmp_path / "reports" / "tiny" / "report.md").is_file(), report.stderr[-2000:]
    assert not modules & {"torch", "torchvision", "wandb"}, modules & {"torch", "torchvision", "wandb"}
    # A study that is not there is one clear line, still without torch.
    missing, modules = imported_by("report", "nope", cwd=str(tmp_path))
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr
    assert not modules & HEAVY, modules & HEAVY


def test_check_of_a_digits_space_needs_torch_but_not_torchvision(write_space, tmp_path):
    result, modules = imported_by("check", str(write_space(TINY_SPACE)), cwd=str(tmp_path))
    assert result.returncode == 0 and "trials: 8" in result.stdout, result.stderr[-2000:]
    assert "torch" in modules and "torchvision" not in modules
