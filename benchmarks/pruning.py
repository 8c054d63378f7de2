"""What each pruner saves, and whether it keeps the conclusions.

    python benchmarks/pruning.py [--space search_spaces/quickstart.yaml]... [--pruners none,median,...]

`--space` may be given several times: one table per grid, from one command.

Runs the same grid once per pruner, each with Optuna's defaults (plus the pruner the YAML itself
configures), W&B disabled, fresh journal storage, then compares with the
unpruned run: total epochs trained, wall time, whether the unpruned run's top-3 cells (mean
objective over seeds) are still complete in every seed and ranked top-3, and whether the report
reaches the same verdicts: the factors and pairs it calls significant (combined, Holm-adjusted
verdict of `ablations.report.verdict`) and the best level of each significant factor. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations import cli  # noqa: E402
from ablations.config import short_key  # noqa: E402
from ablations.report.effects_md import pure_error_design  # noqa: E402
from ablations.report.table import history_table, space_of, trials_table  # noqa: E402
from ablations.report.verdict import best_levels, factor_verdicts, pair_verdicts, verdict_summary  # noqa: E402
from ablations.study import open_storage  # noqa: E402

PRUNERS = {  # each with Optuna's defaults, except where the name says otherwise
    "none": ["pruner.name=none"],
    "median": ["pruner.name=median"],
    "median 9/3": ["pruner.name=median", "pruner.n_startup_trials=9", "pruner.n_warmup_steps=3"],
    "percentile": ["pruner.name=percentile", "pruner.percentile=25.0"],
    "successive_halving": ["pruner.name=successive_halving"],
    "hyperband": ["pruner.name=hyperband"],
    "cell": ["pruner.name=cell"],
    "gap": ["pruner.name=gap"],
    "as in the YAML": [],
}


def verdicts(study: optuna.Study) -> dict:
    """The report's conclusions for a study, as `verdict_summary` gives them."""
    space, trials, history = space_of(study), trials_table(study), history_table(study)
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    pure, direction = pure_error_design(space), space["objective"]["direction"]
    _, rows = factor_verdicts(trials, history, list(factors), pure)
    pairs = pair_verdicts(trials, history, list(factors), pure)
    _, best = best_levels(trials, history, factors, direction)
    return verdict_summary(rows, pairs, best)


KEEP: Path | None = None  # --keep: each run's journal is copied here
REUSE: Path | None = None  # --reuse: a journal found here is read instead of training again


def summarize(study: optuna.Study) -> tuple[pd.DataFrame, dict]:
    rows = [
        {
            "cell": " ".join(f"{k}={v}" for k, v in t.user_attrs["cell"].items()),
            "seed": t.user_attrs["seed"],
            "outcome": t.user_attrs["outcome"],
            "epochs": t.user_attrs["epochs_run"],
            "objective": t.value,
            "wall_time": t.user_attrs.get("wall_time", 0.0),
        }
        for t in study.trials
    ]
    return pd.DataFrame(rows), verdicts(study)


def load(journal: Path) -> optuna.Study:
    storage = open_storage(str(journal))
    name = optuna.get_all_study_summaries(storage)[0].study_name
    return optuna.load_study(study_name=name, storage=storage)


def run(space: Path, pruner: str, extra: list[str]) -> tuple[pd.DataFrame, float, dict]:
    """Sweep `space` with `pruner` in a fresh folder; return one row per trial, the wall time (with
    --reuse: the trials' summed training time) and the report's verdicts."""
    name = f"{space.stem}-{pruner.replace(' ', '_')}.journal"
    if REUSE and (REUSE / name).is_file():
        trials, found = summarize(load(REUSE / name))
        return trials, float(trials["wall_time"].sum()), found
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
        trials, found = summarize(load(Path(tmp) / "runs" / "ablate.journal"))
        if KEEP:
            KEEP.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "runs" / "ablate.journal", KEEP / name)
        os.chdir(ROOT)
    return trials, elapsed, found


def top3(trials: pd.DataFrame, maximize: bool) -> list[str]:
    means = trials.groupby("cell")["objective"].mean().sort_values(ascending=not maximize)
    return list(means.index[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, action="append", help="default: search_spaces/quickstart.yaml")
    parser.add_argument("--pruners", default=",".join(PRUNERS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to ablate run")
    parser.add_argument("--keep", type=Path, help="keep each run's journal in this folder")
    parser.add_argument("--reuse", type=Path, help="read the journals kept in this folder instead of training")
    args = parser.parse_args()
    global KEEP, REUSE
    KEEP = args.keep.resolve() if args.keep else None
    REUSE = args.reuse.resolve() if args.reuse else None
    os.environ["WANDB_MODE"] = "disabled"
    sys.stdout.reconfigure(line_buffering=True)  # each table as soon as its grid is done
    for space in args.space or [ROOT / "search_spaces" / "quickstart.yaml"]:
        compare(space.resolve(), args.pruners.split(","), args.overrides)


def compare(space: Path, pruners: list[str], overrides: list[str]) -> None:
    extra = [x for o in overrides for x in ("--set", o)]
    results = {p: run(space, p, extra) for p in ["none", *(p for p in pruners if p != "none")]}
    base, base_time, base_verdict = results["none"]
    best = top3(base, maximize=True)
    base_epochs = int(base["epochs"].sum())
    print(f"## Pruning on `{space.name}` {' '.join(overrides)}\n")
    print(f"Top-3 cells without pruning: {'; '.join(best)}\n")
    print(f"Verdicts without pruning: factors {base_verdict['factors']}, pairs {base_verdict['pairs']}, ")
    print(f"best levels {base_verdict['best']}\n")
    if REUSE:
        print("(read from kept journals: `wall time` is the trials' summed training time)\n")
    print(
        "| pruner | epochs | fewer epochs | wall time | pruned | top-3 complete | top-3 ranked top-3 "
        "| same factors | same pairs | same best levels | verdicts differ in |"
    )
    print("| --- | ---: | ---: | ---: | ---: | :---: | :---: | :---: | :---: | :---: | --- |")
    for pruner, (trials, seconds, found) in results.items():
        epochs = int(trials["epochs"].sum())
        in_top = trials[trials["cell"].isin(best)]
        complete = bool((in_top["outcome"] == "complete").all())
        ranked = set(top3(trials, maximize=True)) == set(best)
        pruned = int((trials["outcome"] == "pruned").sum())
        same = {k: found[k] == base_verdict[k] for k in ("factors", "pairs", "best")}
        differ = "; ".join(_difference(k, base_verdict[k], found[k]) for k, ok in same.items() if not ok) or "—"
        yes = {True: "yes", False: "no"}
        print(
            f"| {pruner} | {epochs} | {base_epochs / epochs:.2f}x | {seconds:.1f}s | {pruned}/{len(trials)} "
            f"| {yes[complete]} | {yes[ranked]} | {yes[same['factors']]} | {yes[same['pairs']]} "
            f"| {yes[same['best']]} | {differ} |"
        )
    print()


def _difference(kind: str, base: Any, found: Any) -> str:
    if kind == "best":
        return ", ".join(f"best {f}: {found.get(f)} not {v}" for f, v in base.items() if found.get(f) != v) or (
            f"best levels of {sorted(set(found) - set(base))}"
        )
    missing, extra = sorted(set(base) - set(found)), sorted(set(found) - set(base))
    return f"{kind}: " + ", ".join([*(f"-{m}" for m in missing), *(f"+{e}" for e in extra)])


if __name__ == "__main__":
    main()
