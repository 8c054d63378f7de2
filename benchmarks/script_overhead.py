"""Overhead of script mode (`program:`) per trial against the in-process built-in loop, on the
same work.

    python benchmarks/script_overhead.py [--trials 8] [--repeats 3] [--epochs 5]

(a) `ablate run` of a built-in space: one cell (the quickstart's 4x64 MLP on digits) x N seeds,
    in-process, no pruning, W&B disabled, no report, diagnostics off, 1 torch thread;
(b) the same space in script mode: a script that builds the same data and model with the
    suite's own functions, trains them with the same loop (`ablations.train.fit`) and reports
    each epoch with `ablations.report()`; so (b) - (a) is the price of script mode per trial;
(c) where that price goes, measured alone: a Python process that only imports `ablations` and
    reports once (process start, the light import, the channel set-up), `import torch` in a
    fresh process, the imports of (b)'s script, and one report's round trip over the channel
    (a script reporting 2000 times).
Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations import cli  # noqa: E402
from ablations.program import program_records  # noqa: E402

SECTIONS = """
data: {{name: digits}}
model: {{width: 64, depth: 4, norm: batch, init: kaiming, activation: relu}}
train: {{optimizer: sgd, lr: 0.05, momentum: 0.9, batch_size: 64, epochs: {epochs}}}
"""
BUILT_IN = "name: {name}\nseeds: {trials}\npruner: {{name: none}}\ndiagnostics: false\n" + SECTIONS
SCRIPT_MODE = "name: {name}\nprogram: python same_work.py\nseeds: {trials}\npruner: {{name: none}}\n" + SECTIONS

# The built-in trial's work, as a user's script: the same config, data, model and loop.
SAME_WORK = """
import torch
import ablations
from ablations.config import TrialConfig
from ablations.data import load_dataset
from ablations.diagnostics import first_batch
from ablations.models import build_model
from ablations.train import fit

cfg = ablations.config()
trial = TrialConfig.model_validate({k: cfg[k] for k in ("data", "model", "train")})
torch.manual_seed(cfg["seed"])
data = load_dataset(trial.data, torch.device("cpu"))
batch_x, _ = first_batch(data.train)
model = build_model(trial.model, data.input_shape, data.num_classes, batch_x)
for record in fit(model, data, trial.train, cfg["seed"]):
    if ablations.report(record.epoch, **record.metrics()):
        break
"""
REPORT_ONCE = "import ablations\nablations.report(1, val_acc=1.0)\n"
REPORT_MANY = "import ablations\nfor step in range(1, {n} + 1):\n    ablations.report(step, val_acc=0.5)\n"


def sweep_seconds(space_text: str, folder: Path) -> float:
    """Wall time of `ablate run` in-process, from the command to its last trial."""
    (folder / "space.yaml").write_text(space_text)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main(["run", "space.yaml", "--wandb", "disabled", "--no-report", "--threads", "1", "--device", "cpu"])
        except SystemExit as done:
            if done.code:
                raise RuntimeError(f"`ablate run` failed with {done.code}") from None
    return time.perf_counter() - start


def records_seconds(script: str, folder: Path, name: str) -> tuple[float, int]:
    """Wall time of one program run through the suite's side of the channel, and its reports."""
    path = folder / f"{name}.py"
    path.write_text(script)
    start = time.perf_counter()
    count = sum(1 for _ in program_records(["python", str(path)], {}, "val_acc", folder / "logs" / name))
    return time.perf_counter() - start, count


def import_seconds(code: str) -> float:
    """Wall time of a fresh Python process that runs `code` (imports)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    os.environ["WANDB_MODE"] = "disabled"
    in_process, script_mode, bare, torch_import, suite_import, round_trip = [], [], [], [], [], []
    imports = "\n".join(line for line in SAME_WORK.splitlines() if line.startswith(("import", "from")))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        (folder / "same_work.py").write_text(textwrap.dedent(SAME_WORK))
        for repeat in range(args.repeats):
            fill = {"trials": args.trials, "epochs": args.epochs}
            in_process.append(sweep_seconds(BUILT_IN.format(name=f"a{repeat}", **fill), folder) / args.trials)
            script_mode.append(sweep_seconds(SCRIPT_MODE.format(name=f"b{repeat}", **fill), folder) / args.trials)
            bare.append(records_seconds(REPORT_ONCE, folder, "once")[0])
            torch_import.append(import_seconds("import torch"))
            suite_import.append(import_seconds(imports))
            seconds, count = records_seconds(REPORT_MANY.format(n=2000), folder, "many")
            round_trip.append((seconds - bare[-1]) / count)
    a, b = statistics.median(in_process), statistics.median(script_mode)
    print(f"## Script mode overhead ({args.trials} trials x {args.epochs} epochs, median of {args.repeats} repeats)\n")
    print("| per trial | seconds |")
    print("| --- | ---: |")
    print(f"| (a) in-process built-in loop | {a:.3f} |")
    print(f"| (b) script mode, same work | {b:.3f} |")
    print(f"| (b) - (a): script mode's price | {b - a:.3f} ({b / a:.2f}x) |")
    print(f"| (c) process start + `import ablations` + one report | {statistics.median(bare):.3f} |")
    print(f"| (c) `import torch` in a fresh process | {statistics.median(torch_import):.3f} |")
    suite = statistics.median(suite_import)
    print(f"| (c) the same-work script's imports (torch, the suite's modules) | {suite:.3f} |")
    print(f"| (c) one report's round trip (suite <-> script) | {statistics.median(round_trip) * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
