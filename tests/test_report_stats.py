"""The report's statistics on tables with known planted effects plus seed noise: interval coverage,
false positives of a null factor, a planted interaction, and a planted survivorship bias.

Tables are built directly as the trials table would hold them (many replicates, no Optuna, no files),
so hundreds of simulated studies stay fast.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ablations.report.anova import factor_tests, interaction_tests
from ablations.report.budget import budget_comparison, common_budget
from ablations.report.stats import level_table

NORM = {"none": 0.0, "batch": 0.05, "layer": 0.03}  # planted main effects
INIT = {"default": 0.0, "kaiming": 0.03}
ACT = {"relu": 0.0, "tanh": 0.0}  # no effect at all
SEEDS = 3
NOISE = 0.02


def grid_table(objective: np.ndarray, factors: dict[str, list[str]], seeds: int) -> pd.DataFrame:
    """A trials table for the full factorial x seeds, cells in itertools.product order, seed fastest."""
    rows = [(*combo, seed) for combo in itertools.product(*factors.values()) for seed in range(seeds)]
    table = pd.DataFrame(rows, columns=[*factors, "seed"])
    table["outcome"] = "complete"
    table["objective"] = objective
    return table


def planted_means(factors: dict[str, dict[str, float]], interaction=None) -> np.ndarray:
    """True mean of every (cell, seed) row of `grid_table`: additive effects plus an optional interaction."""
    means = []
    for combo in itertools.product(*(list(f) for f in factors.values())):
        mean = 0.7 + sum(effects[level] for effects, level in zip(factors.values(), combo, strict=True))
        if interaction is not None:
            mean += interaction(dict(zip(factors, combo, strict=True)))
        means += [mean] * SEEDS
    return np.array(means)


def simulate(means: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """Seed noise for every replicate at once: one row of objectives per simulated study."""
    return means + np.random.default_rng(seed).normal(0.0, NOISE, size=(replicates, len(means)))


def test_delta_intervals_cover_the_planted_differences_at_the_nominal_rate():
    planted = {"norm": NORM, "init": INIT, "act": ACT}
    levels = {f: list(e) for f, e in planted.items()}
    runs = simulate(planted_means(planted), replicates=200, seed=1)
    covered = total = 0
    for objective in runs:
        table = grid_table(objective, levels, SEEDS)
        for factor, effects in planted.items():
            stats = level_table(table, factor, levels[factor], "maximize", [f for f in levels if f != factor])
            best = stats["level"].iloc[0]
            for _, row in stats.iloc[1:].iterrows():
                truth = effects[row["level"]] - effects[best]
                covered += row["delta_low"] <= truth <= row["delta_high"]
                total += 1
    assert total == 200 * (2 + 1 + 1)
    # 800 intervals: the binomial sd of the rate at 95% is 0.8%; the band is about +-3 sd.
    assert 0.925 <= covered / total <= 0.975, covered / total


def test_a_null_factor_is_called_significant_at_about_the_nominal_rate():
    planted = {"norm": NORM, "init": INIT, "act": ACT}
    levels = {f: list(e) for f, e in planted.items()}
    runs = simulate(planted_means(planted), replicates=400, seed=2)
    p = {f: [] for f in planted}
    for objective in runs:
        tests = factor_tests(grid_table(objective, levels, SEEDS), list(levels)).set_index("factor")
        for factor in planted:
            p[factor].append(tests.loc[factor, "p"])
    false_positive = np.mean(np.array(p["act"]) < 0.05)
    assert 0.02 <= false_positive <= 0.09, false_positive
    # Under the null the p-values are uniform: about a tenth below 0.1, half below 0.5.
    assert 0.06 <= np.mean(np.array(p["act"]) < 0.1) <= 0.15
    assert 0.42 <= np.mean(np.array(p["act"]) < 0.5) <= 0.58
    # The planted effects are found, and ranked first by effect size.
    assert np.mean(np.array(p["norm"]) < 0.05) == 1.0 and np.mean(np.array(p["init"]) < 0.05) > 0.95


def test_factors_are_ranked_by_effect_size():
    planted = {"act": ACT, "init": INIT, "norm": NORM}
    levels = {f: list(e) for f, e in planted.items()}
    means = planted_means(planted)  # norm moves the mean about twice as much as init, act not at all
    objective = means + np.random.default_rng(3).normal(0.0, NOISE / 4, len(means))
    tests = factor_tests(grid_table(objective, levels, SEEDS), list(levels))
    assert list(tests["factor"]) == ["norm", "init", "act"]
    assert tests["eta2"].is_monotonic_decreasing and tests["error"].iloc[0] == "seed noise"
    # Pure error with the seed as a block: 12 cells x (3 - 1) seeds, less 2 for the block.
    assert (tests["df"] == [2, 1, 1]).all() and (tests["df_error"] == 12 * (SEEDS - 1) - (SEEDS - 1)).all()


def gn_beats_bn_at_small_batches(cell: dict[str, str]) -> float:
    """Group norm beats batch norm by 0.08 at batch size 4 and not at all at 64."""
    return 0.08 if cell["norm"] == "group" and cell["batch"] == "4" else 0.0


def test_a_planted_interaction_is_flagged_and_a_null_pair_is_not():
    planted = {"norm": {"batch": 0.0, "group": 0.0}, "batch": {"4": 0.0, "64": 0.02}, "act": ACT}
    levels = {f: list(e) for f, e in planted.items()}
    runs = simulate(planted_means(planted, gn_beats_bn_at_small_batches), replicates=200, seed=4)
    flagged = {("norm", "batch"): 0, ("norm", "act"): 0, ("batch", "act"): 0}
    for objective in runs:
        tests = interaction_tests(grid_table(objective, levels, SEEDS), list(levels))
        for _, row in tests.iterrows():
            flagged[row["a"], row["b"]] += row["p"] < 0.05
    assert flagged["norm", "batch"] / 200 > 0.95
    assert flagged["norm", "act"] / 200 <= 0.10 and flagged["batch", "act"] / 200 <= 0.10


def test_one_seed_per_cell_falls_back_to_the_model_residual():
    planted = {"norm": NORM, "init": INIT}
    levels = {f: list(e) for f, e in planted.items()}
    objective = planted_means(planted)[::SEEDS] + np.random.default_rng(5).normal(0, 0.002, 6)
    table = grid_table(objective, levels, seeds=1)
    tests = factor_tests(table, list(levels))
    assert (tests["error"] == "additive residual").all() and (tests["df_error"] == 6 - 4).all()
    assert tests.set_index("factor").loc["norm", "p"] < 0.05


def test_a_sparse_design_tests_against_the_additive_residual():
    planted = {"norm": NORM, "init": INIT, "act": ACT}
    levels = {f: list(e) for f, e in planted.items()}
    table = grid_table(simulate(planted_means(planted), replicates=1, seed=7)[0], levels, SEEDS)
    pure, residual = factor_tests(table, list(levels)), factor_tests(table, list(levels), pure_error=False)
    assert (pure["error"] == "seed noise").all() and (residual["error"] == "additive residual").all()
    # The residual pools seed noise with the (here absent) interactions: more degrees of freedom.
    # (Both lose the seed block's 2 degrees of freedom.)
    assert (residual["df_error"] == 36 - (1 + 2 + 1 + 1) - 2).all() and (pure["df_error"] == 22).all()


def survivorship_study(seeds: int = 30, epochs: int = 6, rng_seed: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """adam and sgd have the same mean learning curve, but sgd's seeds spread widely and the pruner
    stops the worse half of sgd after epoch 2: its completed survivors look far better than sgd is."""
    rng = np.random.default_rng(rng_seed)
    trials, history = [], []
    for optimizer, spread in (("adam", 0.01), ("sgd", 0.10)):
        finals = 0.8 + rng.normal(0.0, spread, seeds)
        cutoff = np.median(finals)
        for seed, final in enumerate(finals):
            pruned = optimizer == "sgd" and final < cutoff
            ran = 2 if pruned else epochs
            key = f"{optimizer}/{seed}"
            curve = final * np.arange(1, ran + 1) / epochs
            trials.append((key, f"optimizer={optimizer}", optimizer, seed, "pruned" if pruned else "complete", ran))
            trials[-1] += (float(curve[-1]),)
            history += [(key, optimizer, seed, epoch + 1, float(v)) for epoch, v in enumerate(curve)]
    columns = ["key", "cell", "optimizer", "seed", "outcome", "epochs_run", "objective"]
    return pd.DataFrame(trials, columns=columns), pd.DataFrame(
        history, columns=["key", "optimizer", "seed", "epoch", "objective"]
    )


def test_the_pruning_aware_comparison_removes_a_planted_survivorship_bias():
    trials, history = survivorship_study()
    assert common_budget(trials) == 2
    budget, table = budget_comparison(trials, history, "optimizer", ["adam", "sgd"], "maximize", [])
    table = table.set_index("level")
    # Completed trials only: sgd's survivors beat adam by several points, which is pure selection.
    assert table.loc["sgd", "mean_complete"] - table.loc["adam", "mean_complete"] > 0.05
    assert table.loc["sgd", "n_complete"] == 15 and table.loc["sgd", "pruned"] == 15
    assert table.loc["sgd", "pruned_at"] == "15× ep 2"
    # Every trial at epoch 2: the planted truth (no difference) lies inside the interval.
    assert table.loc["sgd", "n_budget"] == table.loc["adam", "n_budget"] == 30
    other = table.index[1]
    assert table.loc[other, "delta_low"] <= 0.0 <= table.loc[other, "delta_high"]
    assert abs(table.loc[other, "delta"]) < 0.02


@pytest.mark.parametrize("rng_seed", range(3))
def test_diverged_trials_are_counted_with_their_epoch(rng_seed):
    trials, history = survivorship_study(seeds=6, rng_seed=rng_seed)
    first = trials.index[trials["optimizer"] == "adam"][0]
    trials.loc[first, ["outcome", "epochs_run"]] = ["diverged", 1]
    history = history[~((history["key"] == trials.loc[first, "key"]) & (history["epoch"] > 1))]
    _, table = budget_comparison(trials, history, "optimizer", ["adam", "sgd"], "maximize", [])
    adam = table.set_index("level").loc["adam"]
    assert adam["diverged"] == 1 and adam["diverged_at"] == "ep 1" and adam["n_budget"] == 5


def test_the_distribution_functions_equal_scipy_stats_and_the_report_does_not_import_it():
    import subprocess
    import sys

    from scipy import stats

    from ablations.report.distributions import beta_quantile, chi2_survival, f_survival, t_quantile

    for q, df in itertools.product([0.5, 0.9, 0.975, 0.995], [1, 2, 3.7, 10, 250]):
        assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-10)
    for x, dfn, dfd in itertools.product([-1.0, 0.0, 0.3, 1.0, 4.2, 30.0, np.inf], [1, 3, 7], [1, 5, 40]):
        assert f_survival(x, dfn, dfd) == pytest.approx(stats.f.sf(x, dfn, dfd), rel=1e-10, abs=1e-300)
    for x, df in itertools.product([-1.0, 0.0, 0.5, 3.0, 12.0, 80.0], [1, 2, 5, 17]):
        assert chi2_survival(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-10, abs=1e-300)
    for q, a, b in itertools.product([0.025, 0.5, 0.975], [1, 2, 9], [1, 4, 30]):
        assert beta_quantile(q, a, b) == pytest.approx(stats.beta.ppf(q, a, b), rel=1e-10)
    assert np.isnan(t_quantile(0.975, np.nan)) and np.isnan(chi2_survival(1.0, 0))
    code = "import sys, ablations.report; print('scipy.stats' in sys.modules)"  # ~0.8 s the report no longer pays
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
