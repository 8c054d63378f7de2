"""The bad-input catalog, against a study that already holds results: each mistake gives one line
that names the problem and the fix, exit code 2, no traceback, and leaves the study's storage
byte for byte as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_config import assert_one_clear_line
from tests.workers_helpers import assert_exactly_once, space_text

JOURNAL = Path("runs") / "ablate.journal"


@pytest.fixture
def study_with_results(ablate, write_space) -> Path:
    """The `tiny` study, finished: 4 cells x 1 seed. Returns its space file."""
    space = write_space(space_text(seeds=1, epochs=1))
    assert ablate("run", str(space), "--wandb", "disabled", "--no-report").code == 0
    return space


def assert_refused_and_study_untouched(result, before: bytes, *fragments: str) -> None:
    assert_one_clear_line(result, *fragments)
    assert JOURNAL.read_bytes() == before, "a refused command must not write to the study"


def tiny(**changes: str) -> str:
    text = space_text(seeds=1, epochs=1)
    for old, new in changes.values():
        assert old in text
        text = text.replace(old, new)
    return text


CATALOG = {
    "malformed YAML": ("name: tiny\nfactors:\n  norm: [none, batch\n", (), ("malformed YAML", "line")),
    "unknown key": (tiny(c=("width: 8", "widht: 8")), (), ("model.widht", "unknown key", "width")),
    "unknown factor": (tiny(c=("  norm:", "  normalisation:")), (), ("factors.normalisation", "unknown config key")),
    "unknown level": (tiny(c=("[none, batch]", "[none, batchnorm]")), (), ("'batchnorm'", "allowed: none")),
    "wrong type": (tiny(c=("lr: 0.05", "lr: fast")), (), ("train.lr", "'fast'")),
    "dropout >= 1": (tiny(c=("activation: [relu, tanh]", "dropout: [0.0, 1.0]")), (), ("factors.dropout", "1")),
    "depth < 1": (tiny(c=("depth: 1", "depth: 0")), (), ("model.depth", "greater than or equal to 1")),
    "negative lr": (tiny(c=("lr: 0.05", "lr: -0.1")), (), ("train.lr", "greater than 0")),
    "zero epochs": (tiny(c=("epochs: 1", "epochs: 0")), (), ("train.epochs", "greater than or equal to 1")),
    "empty factor": (tiny(c=("activation: [relu, tanh]", "activation: []")), (), ("factors.activation", "empty")),
    "grid over max_cells": (tiny(), ("--max-cells", "3"), ("4 cells", "--max-cells 3", "--yes")),
    "unreachable storage": (
        tiny(),
        ("--storage", "postgresql://ablate:hunter2@127.0.0.1:1/ablations"),
        ("cannot open it", "ablate:***@127.0.0.1:1", "server is running"),
    ),
    "different grid": (tiny(c=("[none, batch]", "[none, layer]")), (), ("different grid", "--study", "--extend")),
    "extend that changes the base": (
        tiny(c=("lr: 0.05", "lr: 0.1")),
        ("--extend",),
        ("--extend", "differs in train", "--study NEW_NAME"),
    ),
    "extend that drops a level": (
        tiny(c=("[none, batch]", "[none, layer]")),
        ("--extend",),
        ("--extend", "drops level(s) batch", "--study NEW_NAME"),
    ),
    "unknown dataset": (
        tiny(c=("pruner:", "data: {name: imagenet22k}\npruner:")),
        (),
        ("data.name", "'imagenet22k'", "digits", "cifar10"),
    ),
    "dataset files missing": (
        tiny(c=("pruner:", "data: {name: cifar10, root: nowhere}\npruner:")),
        (),
        ("cifar10", "nowhere/cifar-10-batches-py", "download: true"),
    ),
    "missing device": (
        tiny(),
        ("--device", "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"),
        ("--device cuda",),
    ),
    "zero workers": (tiny(), ("--workers", "0"), ("--workers 0", "at least 1")),
    "zero threads": (tiny(), ("--threads", "0"), ("--threads 0", "positive")),
}


@pytest.mark.parametrize("case", list(CATALOG))
def test_bad_input_is_refused_with_one_line_and_the_study_untouched(case, ablate, write_space, study_with_results):
    text, args, fragments = CATALOG[case]
    before = JOURNAL.read_bytes()
    path = write_space(text, "changed.yaml")
    result = ablate("run", str(path), "--wandb", "disabled", *args)
    assert_refused_and_study_untouched(result, before, *fragments)
    assert "hunter2" not in result.err + result.out


def test_a_grid_over_max_cells_runs_with_yes(ablate, write_space):
    result = ablate("run", str(write_space(tiny())), "--max-cells", "3", "--yes", "--wandb", "disabled", "--no-report")
    assert result.code == 0, result
    assert_exactly_once("tiny", 4)


def test_extend_adds_only_the_new_cells_and_seeds(ablate, write_space, study_with_results):
    from tests.workers_helpers import trials_of

    before = {t._trial_id: (t.state, t.value) for t in trials_of("tiny")}  # noqa: SLF001
    wider = write_space(tiny(c=("[none, batch]", "[none, batch, layer]")), "wider.yaml")
    result = ablate("run", str(wider), "--extend", "--set", "seeds=2", "--wandb", "disabled", "--no-report")
    assert result.code == 0, result
    assert "8 trial(s) queued now" in result.out  # 6 cells x 2 seeds = 12 tasks, 4 done before
    trials = assert_exactly_once("tiny", 12)
    assert {t._trial_id: (t.state, t.value) for t in trials if t._trial_id in before} == before  # noqa: SLF001
    again = ablate("run", str(wider), "--set", "seeds=2", "--wandb", "disabled", "--no-report")
    assert again.code == 0 and "0 trial(s) queued now" in again.out, again
