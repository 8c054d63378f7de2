"""How long the CLI takes to answer, against `python -c "import click"` as the floor.

    python benchmarks/cli_latency.py [--repeats 5] [--ablate PATH]

Times `ablate --help`, `ablate status`, `ablate check` and `ablate report` (81 trials: the
quickstart study, swept once first with `--wandb disabled --no-report`) as fresh processes, in the
same folder, and prints medians of wall and CPU time (user + system). `--ablate` points at another
installation's `ablate` (e.g. an older checkout) to compare against the same study.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "search_spaces" / "quickstart.yaml")


def timed(command: list[str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ablate", default=str(Path(sys.executable).with_name("ablate")))
    args = parser.parse_args()
    commands = {
        'floor: `python -c "import click"`': [sys.executable, "-c", "import click"],
        "`ablate --help`": [args.ablate, "--help"],
        "`ablate status quickstart`": [args.ablate, "status", "quickstart"],
        "`ablate check search_spaces/quickstart.yaml`": [args.ablate, "check", QUICKSTART],
        "`ablate report quickstart` (81 trials)": [args.ablate, "report", "quickstart"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        print("sweeping the quickstart once (81 trials)...", file=sys.stderr)
        sweep = [args.ablate, "run", QUICKSTART, "--wandb", "disabled", "--no-report"]
        subprocess.run(sweep, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                results[name].append(timed(command, tmp))

    floor_wall, floor_cpu = (statistics.median(r[i] for r in results[next(iter(commands))]) for i in (0, 1))
    print(f"## CLI latency (median of {args.repeats} runs each, fresh processes)\n")
    print("| command | wall time | CPU time | wall above the floor |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in results.items():
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        above = "" if name.startswith("floor") else f"+{wall - floor_wall:.2f}s"
        print(f"| {name} | {wall:.2f}s | {cpu:.2f}s | {above} |")
    print(f"\nReproduce: `python benchmarks/cli_latency.py --repeats {args.repeats}`")


if __name__ == "__main__":
    main()
