"""Whole process, start to exit: `ablate run` against the script a practitioner would write by hand.

    python benchmarks/whole_process.py [--seeds 9] [--epochs 60] [--repeats 5]

One cell (4x64 MLP, batch norm, Kaiming, ReLU) x N seeds on scikit-learn's digits, no pruning:
(a) benchmarks/hand_written_digits.py: a plain PyTorch loop, validation accuracy reported to an
    Optuna journal study every epoch, test accuracy at the end;
(b) `ablate run SPACE --wandb disabled` with `diagnostics: false` (the report at the end included);
(c) the same with `--no-report`, to show what the report costs;
(d) (a) with torch's fused SGD kernel (`--fused`), which `ablate run` uses: the loop like for like.
Each repeat runs the four as fresh processes in fresh folders, in a rotating order (paired runs
on a shared machine see the same load). Wall time and CPU time (user + system of the process) are
reported as medians; the ratio is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from cli_latency import timed  # a sibling script: benchmarks/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]

SPACE = """
name: whole_process
seeds: {seeds}
pruner: {{name: none}}
diagnostics: false
data: {{name: digits}}
model: {{arch: mlp, width: 64, depth: 4, norm: batch, init: kaiming, activation: relu}}
train: {{optimizer: sgd, lr: 0.05, momentum: 0.9, batch_size: 64, epochs: {epochs}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ablate = str(Path(sys.executable).with_name("ablate"))
    variants = {
        "hand-written script (PyTorch loop + Optuna journal study)": [
            sys.executable, str(ROOT / "benchmarks" / "hand_written_digits.py"),
            "--seeds", str(args.seeds), "--epochs", str(args.epochs),
        ],
        "`ablate run SPACE --wandb disabled` (report included)": [ablate, "run", "space.yaml", "--wandb", "disabled"],
        "... with `--no-report`": [ablate, "run", "space.yaml", "--wandb", "disabled", "--no-report"],
        "hand-written script with torch's fused SGD (`--fused`)": [
            sys.executable, str(ROOT / "benchmarks" / "hand_written_digits.py"),
            "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--fused",
        ],
    }  # fmt: skip
    names = list(variants)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "space.yaml").write_text(textwrap.dedent(SPACE.format(**vars(args))))
                results[name].append(timed(variants[name], tmp))
            print(f"repeat {repeat + 1}: {name}: {results[name][-1][0]:.2f}s", file=sys.stderr)

    hand = results[names[0]]
    print(
        f"## Whole process ({args.seeds} seeds x {args.epochs} epochs of one cell on digits, "
        f"median of {args.repeats} paired runs)\n"
    )
    print("| process | wall time | ratio (wall) | CPU time | ratio (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        runs = results[name]
        wall_ratio = statistics.median(r[0] / h[0] for r, h in zip(runs, hand, strict=True))
        cpu_ratio = statistics.median(r[1] / h[1] for r, h in zip(runs, hand, strict=True))
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"| {name} | {wall:.2f}s | {wall_ratio:.2f} | {cpu:.2f}s | {cpu_ratio:.2f} |")
    print(f"\nReproduce: `python benchmarks/whole_process.py --seeds {args.seeds} --epochs {args.epochs} "
          f"--repeats {args.repeats}`")  # fmt: skip


if __name__ == "__main__":
    main()
