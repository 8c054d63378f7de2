"""Run every benchmark and write BENCHMARKS.md.

    python benchmarks/run_all.py [--quick]

Each benchmark is a script in this folder that prints a markdown section; this collects them
under a header naming the machine and the exact commands, so every figure can be reproduced.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# (script, heading when the script prints none, arguments for --quick, arguments for a full run)
PRUNING = [
    *("--space", "search_spaces/quickstart.yaml", "--space", "search_spaces/pruning_large.yaml"),
    *("--pruners", "none,median 9/3,median,gap,cell"),
]
BENCHMARKS = [
    ("overhead.py", "", ["--trials", "27", "--repeats", "3"], ["--trials", "27", "--repeats", "5"]),
    ("workers.py", "", ["--trials", "160", "--epochs", "8"], ["--trials", "400", "--epochs", "8"]),
    ("pruning.py", "", PRUNING, PRUNING),
    ("data_pipeline.py", "Input pipeline", ["--size", "8000", "--repeats", "2"], []),
    ("diagnostics_overhead.py", "Diagnostics overhead", ["--repeats", "3"], []),
    ("wandb_outage.py", "", [], []),
    ("cli_latency.py", "", ["--repeats", "3"], ["--repeats", "5"]),
    ("whole_process.py", "", ["--repeats", "3"], ["--repeats", "5"]),
]
# Everything after this line in BENCHMARKS.md is written by hand (what the figures mean, which
# targets are met, what bounds the others) and is kept when the figures are regenerated.
ANALYSIS = "<!-- analysis: written by hand, kept by benchmarks/run_all.py -->"


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: minutes instead of tens of minutes")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    sections = []
    for script, heading, quick, full in BENCHMARKS:
        path = ROOT / "benchmarks" / script
        if not path.exists():
            continue
        command = [sys.executable, str(path), *(quick if args.quick else full)]
        shown = " ".join(["python", f"benchmarks/{script}", *command[2:]])
        print(f"running: {shown}", file=sys.stderr)
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_SILENT": "true"}
        )
        if result.returncode != 0:
            raise SystemExit(f"{shown} failed:\n{result.stderr[-3000:]}")
        text = result.stdout.strip()
        if not text.startswith("## "):
            text = f"## {heading}\n\n{text}"
        sections.append(f"{text}\n\nReproduce: `{shown}`\n")
    header = (
        "# Benchmarks\n\n"
        f"Measured {datetime.date.today()} on {machine()}. Regenerate everything with "
        f"`python benchmarks/run_all.py{' --quick' if args.quick else ''}`.\n"
    )
    old = args.output.read_text() if args.output.exists() else ""
    analysis = old[old.index(ANALYSIS) :] if ANALYSIS in old else f"{ANALYSIS}\n"
    args.output.write_text(header + "\n" + "\n".join(sections) + "\n" + analysis)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
