"""Trials per hour with 1 vs 2 (or more) local workers, on small models.

    python benchmarks/workers.py [--workers 1,2] [--trials 40] [--epochs 3]

Each setting sweeps the same grid (width-32 MLPs on digits, no pruning, W&B disabled) from a
fresh storage as `ablate run --workers N` in a subprocess, and counts finished trials per hour of
wall time. Prints markdown, with the torch thread count each worker got.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPACE = """
name: scaling
seeds: {seeds}
pruner: {{name: none}}
model: {{width: 32, depth: 2}}
train: {{epochs: {epochs}, batch_size: 64}}
factors:
  norm: [none, batch]
  activation: [relu, tanh]
"""


def sweep(workers: int, seeds: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "scaling.yaml"
        space.write_text(textwrap.dedent(SPACE.format(seeds=seeds, epochs=epochs)))
        ablate = Path(sys.executable).parent / "ablate"
        command = [str(ablate), "run", str(space), "--wandb", "disabled", "--no-report", "--workers", str(workers)]
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, check=True, capture_output=True, env={**os.environ, "COLUMNS": "200"})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--trials", type=int, default=40, help="rounded to a multiple of the 4 cells")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    seeds = max(1, args.trials // 4)
    results = {n: sweep(n, seeds, args.epochs) for n in map(int, args.workers.split(","))}
    base = results[min(results)]
    print(f"## Worker scaling ({seeds * 4} trials x {args.epochs} epochs, {os.cpu_count()} cores)\n")
    print("| workers | wall time | trials per hour | speed-up |")
    print("| ---: | ---: | ---: | ---: |")
    for n, seconds in results.items():
        print(f"| {n} | {seconds:.1f}s | {seeds * 4 / seconds * 3600:,.0f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
