"""Overhead of the suite over a minimal hand-written PyTorch loop, on the same cell and tensors.

    python benchmarks/overhead.py [--trials 10] [--repeats 3] [--epochs 12]

(a) a hand-written loop: the quickstart's best cell (4x64 MLP, batch norm, Kaiming, ReLU) as a
    plain nn.Sequential, SGD, the same digits tensors, validation accuracy every epoch;
(b) `ablate run` with its defaults (journal storage, W&B offline, progress display, report),
    in-process, one cell x N seeds, no pruning.
Prints markdown: the median wall time per trial of each, their ratio, and where (b)'s extra time
goes (W&B, storage, report), timed by wrapping those calls.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import importlib
import io
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hand_written_digits import accuracy, mlp, train_epoch  # noqa: E402 - a sibling: benchmarks/ is sys.path[0]

from ablations import cli, tracking  # noqa: E402
from ablations.config import DataConfig  # noqa: E402
from ablations.data import load_dataset  # noqa: E402
from ablations.device import cpu_threads  # noqa: E402

# `ablations.report` the attribute is the script client's function; the package is the report's.
report = importlib.import_module("ablations.report")

SPACE = """
name: overhead
seeds: {trials}
pruner: {{name: none}}
model: {{width: 64, depth: 4, norm: batch, init: kaiming, activation: relu}}
train: {{optimizer: sgd, lr: 0.05, momentum: 0.9, batch_size: 64, epochs: {epochs}}}
"""


def hand_written_trial(epochs: int, seed: int) -> float:
    data = load_dataset(DataConfig())
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        train_epoch(model, opt, data.train.x, data.train.y, gen)
        accuracy(model, data.val.x, data.val.y)
    return time.perf_counter() - start


class Timers:
    """Wraps functions to add up the seconds spent in them, by category."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()

    def wrap(self, owner: object, name: str, category: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[category] += time.perf_counter() - start

        setattr(owner, name, timed)


VARIANTS = {  # label -> extra `ablate run` arguments
    "`ablate run` defaults (journal storage, W&B offline, diagnostics, progress, report)": [],
    "... with `--wandb disabled`": ["--wandb", "disabled"],
    "... and `--set diagnostics=false`": ["--wandb", "disabled", "--set", "diagnostics=false"],
    "... and `--no-report`": ["--wandb", "disabled", "--set", "diagnostics=false", "--no-report"],
}


def suite_run(trials: int, epochs: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        space = Path(tmp) / "overhead.yaml"
        space.write_text(textwrap.dedent(SPACE.format(trials=trials, epochs=epochs)))
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main(["run", str(space), "--wandb", "offline", *extra])
        except SystemExit as exit_:
            if exit_.code:
                raise
        elapsed = time.perf_counter() - start
        os.chdir(ROOT)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_SILENT", "true")
    torch.set_num_threads(cpu_threads(None))

    timers = Timers()
    timers.wrap(tracking.WandbTracker, "start", "W&B init")
    timers.wrap(tracking.WandbTracker, "log", "W&B log")
    timers.wrap(tracking.WandbTracker, "finish", "W&B finish")
    for name in ("set_user_attr", "report", "should_prune"):
        timers.wrap(optuna.Trial, name, "storage writes and pruner")
    timers.wrap(optuna.Study, "tell", "storage writes and pruner")
    timers.wrap(report, "write_report", "report")

    hand_written_trial(1, 0)  # warm-up: imports, first allocation
    hand = [hand_written_trial(args.epochs, seed) for _ in range(args.repeats) for seed in range(args.trials)]
    hand_median = statistics.median(hand)
    print(
        f"## Overhead ({args.trials} trials x {args.epochs} epochs, median of {args.repeats} repeats, "
        f"torch threads {torch.get_num_threads()})\n"
    )
    print("| loop | wall time per trial | ratio to the hand-written loop |")
    print("| --- | ---: | ---: |")
    print(f"| hand-written PyTorch loop | {hand_median * 1000:.0f} ms | 1.00 |")
    default_timers = None
    for label, extra in VARIANTS.items():
        timers.seconds.clear()
        per_trial = statistics.median(
            suite_run(args.trials, args.epochs, extra) / args.trials for _ in range(args.repeats)
        )
        default_timers = default_timers or dict(timers.seconds)
        print(f"| {label} | {per_trial * 1000:.0f} ms | {per_trial / hand_median:.2f} |")
    n_trials = args.trials * args.repeats
    print("\n| time inside the suite's calls, defaults (W&B calls run on a background thread) | per trial |")
    print("| --- | ---: |")
    for category, seconds in sorted(default_timers.items(), key=lambda kv: -kv[1]):
        print(f"| {category} | {seconds / n_trials * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
