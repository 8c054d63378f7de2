"""What each pruner saves, and whether it keeps the conclusions.

    python benchmarks/pruning.py [--space search_spaces/quickstart.yaml] [--pruners none,median,...]

Runs the same grid once per pruner, each with Optuna's defaults (plus the pruner the YAML itself
configures), W&B disabled, fresh journal storage, then compares with the
unpruned run: total epochs trained, wall time, and whether the unpruned run's top-3 cells (mean
objective over seeds) are still complete in every seed and ranked top-3. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations import cli  # noqa: E402
from ablations.study import open_storage  # noqa: E402

PRUNERS = {  # each with Optuna's defaults, except where the name says otherwise
    "none": ["pruner.name=none"],
    "median": ["pruner.name=median"],
    "percentile": ["pruner.name=percentile", "pruner.percentile=25.0"],
    "successive_halving": ["pruner.name=successive_halving"],
    "hyperband": ["pruner.name=hyperband"],
    "cell": ["pruner.name=cell"],
    "as in the YAML": [],
}


def run(space: Path, pruner: str, extra: list[str]) -> tuple[pd.DataFrame, float]:
    """Sweep `space` with `pruner` in a fresh folder; return one row per trial and the wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        pruner_args = [x for setting in PRUNERS[pruner] for x in ("--set", setting)]
        args = ["run", str(space), "--wandb", "disabled", "--no-report", *pruner_args, *extra]
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main(args)
        except SystemExit as exit_:
            if exit_.code:
                raise
        elapsed = time.perf_counter() - start
        name = optuna.get_all_study_summaries(open_storage(None))[0].study_name
        study = optuna.load_study(study_name=name, storage=open_storage(None))
        rows = [
            {
                "cell": " ".join(f"{k}={v}" for k, v in t.user_attrs["cell"].items()),
                "seed": t.user_attrs["seed"],
                "outcome": t.user_attrs["outcome"],
                "epochs": t.user_attrs["epochs_run"],
                "objective": t.value,
            }
            for t in study.trials
        ]
        os.chdir(ROOT)
    return pd.DataFrame(rows), elapsed


def top3(trials: pd.DataFrame, maximize: bool) -> list[str]:
    means = trials.groupby("cell")["objective"].mean().sort_values(ascending=not maximize)
    return list(means.index[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "quickstart.yaml")
    parser.add_argument("--pruners", default=",".join(PRUNERS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to ablate run")
    args = parser.parse_args()
    os.environ["WANDB_MODE"] = "disabled"
    extra = [x for o in args.overrides for x in ("--set", o)]
    results = {p: run(args.space.resolve(), p, extra) for p in args.pruners.split(",")}
    base, base_time = results["none"]
    best = top3(base, maximize=True)
    base_epochs = int(base["epochs"].sum())
    print(f"## Pruning on `{args.space.name}` {' '.join(args.overrides)}\n")
    print(f"Top-3 cells without pruning: {'; '.join(best)}\n")
    print("| pruner | epochs | fewer epochs | wall time | pruned | top-3 complete | top-3 ranked top-3 |")
    print("| --- | ---: | ---: | ---: | ---: | :---: | :---: |")
    for pruner, (trials, seconds) in results.items():
        epochs = int(trials["epochs"].sum())
        in_top = trials[trials["cell"].isin(best)]
        complete = bool((in_top["outcome"] == "complete").all())
        ranked = set(top3(trials, maximize=True)) == set(best)
        pruned = int((trials["outcome"] == "pruned").sum())
        print(
            f"| {pruner} | {epochs} | {base_epochs / epochs:.2f}x | {seconds:.1f}s | {pruned}/{len(trials)} "
            f"| {'yes' if complete else 'no'} | {'yes' if ranked else 'no'} |"
        )


if __name__ == "__main__":
    main()
