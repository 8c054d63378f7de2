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

import optuna
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations.device import cpu_threads  # noqa: E402

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


def sweep(workers: int, seeds: int, epochs: int) -> tuple[float, float]:
    """(wall time of the whole command, steady-state trials per second between the first and
    the last trial to finish: the rate a long sweep runs at, without process start-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "scaling.yaml"
        space.write_text(textwrap.dedent(SPACE.format(seeds=seeds, epochs=epochs)))
        ablate = Path(sys.executable).parent / "ablate"
        command = [str(ablate), "run", str(space), "--wandb", "disabled", "--no-report", "--workers", str(workers)]
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, check=True, capture_output=True, env={**os.environ, "COLUMNS": "200"})
        wall = time.perf_counter() - start
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(Path(tmp) / "runs" / "ablate.journal")))
        done = sorted(t.datetime_complete for t in optuna.load_study(study_name="scaling", storage=storage).trials)
        return wall, (len(done) - 1) / (done[-1] - done[0]).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--trials", type=int, default=40, help="rounded to a multiple of the 4 cells")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    seeds = max(1, args.trials // 4)
    results = {n: sweep(n, seeds, args.epochs) for n in map(int, args.workers.split(","))}
    base_rate = results[min(results)][1]
    print(f"## Worker scaling ({seeds * 4} trials x {args.epochs} epochs, {os.cpu_count()} cores)\n")
    print("Trials per hour is the steady rate between the first and the last trial to finish; the wall")
    print("time includes starting the processes (each worker imports torch: a few seconds).\n")
    print("| workers | torch threads per worker | wall time | trials per hour | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n, (seconds, rate) in results.items():
        print(f"| {n} | {cpu_threads(None, n)} | {seconds:.1f}s | {rate * 3600:,.0f} | {rate / base_rate:.2f}x |")


if __name__ == "__main__":
    main()
