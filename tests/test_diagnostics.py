"""Per-layer diagnostics: the textbook pictures, numbers checked by direct computation, a probe that
never changes the trial it watches, storage, tracker scalars and the report section."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import torch.nn.functional as F

from ablations.config import ModelConfig, TrainConfig
from ablations.data import Dataset, Split
from ablations.diagnostics import Diagnostics, dead_fraction
from ablations.models import build_model
from ablations.models.init import weighted_layers
from ablations.study import open_storage
from ablations.train import fit
from tests.conftest import TINY_SPACE


def tanh_mlp(init: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(init=init, activation="tanh", width=500, depth=10), (500,), 10)
    return model, torch.randn(256, 500), torch.randint(0, 10, (256,))


def direct_activation_stds(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """tanh(W h + b), layer by layer, written out without hooks or the model's forward."""
    stds, h = [], x
    for layer in weighted_layers(model)[:-1]:
        h = torch.tanh(h @ layer.weight.T + layer.bias)
        stds.append(h.std().item())
    return stds


def test_small_random_init_collapses_tanh_activations_and_xavier_keeps_them() -> None:
    model, x, y = tanh_mlp("normal")
    probe = Diagnostics(model, x, y)
    probe.at_init()
    small = probe.init["act_std"]
    assert small == pytest.approx(direct_activation_stds(model, x), rel=1e-3)
    # Each layer multiplies the std by about 0.01 * sqrt(500) = 0.22 (tanh is linear near 0).
    assert all(b < 0.3 * a for a, b in zip(small, small[1:], strict=False))
    assert small[-1] < 1e-5

    model, x, y = tanh_mlp("xavier")
    probe = Diagnostics(model, x, y)
    probe.at_init()
    kept = probe.init["act_std"]
    assert kept == pytest.approx(direct_activation_stds(model, x), rel=1e-3)
    # Glorot & Bengio's picture: Xavier keeps every layer between 0.2 and 0.7, decaying only slowly.
    assert all(0.2 < s < 0.7 for s in kept)
    assert all(b > 0.75 * a for a, b in zip(kept, kept[1:], strict=False))


def test_pre_activation_statistics_and_gradient_norms_match_a_direct_computation() -> None:
    model, x, y = tanh_mlp("xavier")
    probe = Diagnostics(model, x, y)
    probe.at_init()
    first = model.blocks[0].linear
    pre = x @ first.weight.T + first.bias
    assert probe.init["pre_mean"][0] == pytest.approx(pre.mean().item(), rel=1e-3, abs=1e-4)
    assert probe.init["pre_std"][0] == pytest.approx(pre.std().item(), rel=1e-3)
    model.train()
    F.cross_entropy(model(x), y).backward()
    expected = [layer.weight.grad.norm().item() for layer in weighted_layers(model)]
    assert probe.init["grad_norm"] == pytest.approx(expected, rel=1e-3)
    record = probe.record()
    assert record["init"]["grad_ratio"] == pytest.approx(expected[0] / expected[-1], rel=2e-3)
    assert len(record["weights"]) == 11 and len(record["layers"]) == 10


def test_dead_units_are_those_zero_for_the_whole_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(init="kaiming", width=40, depth=2), (20,), 10)
    with torch.no_grad():
        model.blocks[0].linear.bias[:10] = -1e3  # 10 of 40 units can never fire
    probe = Diagnostics(model, torch.randn(64, 20), torch.randint(0, 10, (64,)))
    probe.at_init()
    assert probe.init["dead"][0] == pytest.approx(0.25)
    act = torch.zeros(8, 4, 3, 3)
    act[0, 1, 2, 2] = 1.0  # channel 1 fires once: alive
    assert dead_fraction(act) == pytest.approx(0.75)


def tiny_data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    return Dataset("tiny", Split(x[:150], y[:150]), Split(x[150:], y[150:]), Split(x[150:], y[150:]), 2, (1, 8, 8))


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_a_probe_never_changes_the_training_it_watches(arch: str) -> None:
    data = tiny_data()
    config = ModelConfig(arch=arch, width=4, depth=3, norm="batch", dropout=0.3)
    train = TrainConfig(epochs=3, batch_size=64)

    def run(with_probe: bool) -> tuple[list[dict], list]:
        torch.manual_seed(0)
        model = build_model(config, data.input_shape, 2)
        probe = Diagnostics(model, data.train.x[:64], data.train.y[:64])
        if with_probe:
            probe.at_init()
        history = []
        for record in fit(model, data, train, seed=0):
            history.append({k: v for k, v in record.metrics().items() if k != "seconds"})
            if with_probe:
                probe.after_epoch()
        return history, probe.record()

    plain, _ = run(False)
    probed, record = run(True)
    assert probed == plain
    assert len(record["epoch_grad_norm"]) == 3 and len(record["epoch_grad_ratio"]) == 3
    json.dumps(record, allow_nan=False)  # storable as strict JSON


class RecordingTracker:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []

    def start(self, name: str, group: str, config: dict) -> None:
        pass

    def log(self, metrics: dict, step: int) -> None:
        self.logged.append((step, dict(metrics)))

    def finish(self, summary: dict) -> None:
        return None


def test_sweep_stores_streams_and_reports_the_diagnostics(ablate, write_space, tmp_path, monkeypatch) -> None:
    import ablations.launch as launch

    tracker = RecordingTracker()
    monkeypatch.setattr(launch, "make_tracker", lambda *args, **kwargs: tracker)
    space = write_space(TINY_SPACE)
    assert ablate("run", str(space), "--set", "seeds=1").code == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(None))
    for trial in study.trials:
        diag = trial.user_attrs["diagnostics"]
        assert len(diag["layers"]) == 2 and len(diag["weights"]) == 3
        assert len(diag["epoch_grad_norm"]) == 3 and all(len(g) == 3 for g in diag["epoch_grad_norm"])
        assert all(0 <= d <= 1 for d in diag["init"]["dead"])
        assert "grad_norm/blocks.0.linear" not in trial.user_attrs["history"][0], "history stays compact"
    steps = [step for step, _ in tracker.logged]
    assert steps == [0, 1, 2, 3] * 4
    assert "init/act_std/blocks.1.act" in tracker.logged[0][1]
    assert {"grad_ratio", "grad_norm/classifier", "val_acc"} <= set(tracker.logged[1][1])

    report_dir = tmp_path / "reports" / "tiny"
    markdown = (report_dir / "report.md").read_text()
    section = markdown[markdown.index("## Diagnostics") : markdown.index("## Reproduce")]
    assert "| norm | batch |" in section and "| activation | tanh |" in section
    assert (report_dir / "activation_std.png").is_file() and (report_dir / "grad_norm.png").is_file()
    assert (report_dir / "diagnostics.csv").is_file()


def test_diagnostics_can_be_turned_off_without_changing_the_grid(ablate, write_space) -> None:
    space = write_space(TINY_SPACE)
    assert ablate("run", str(space), "--wandb", "disabled", "--no-report", "--set", "diagnostics=false").code == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(None))
    assert all("diagnostics" not in t.user_attrs for t in study.trials)
    # Same study, diagnostics back on: the grid is the same, nothing is re-run.
    again = ablate("run", str(space), "--wandb", "disabled", "--no-report")
    assert again.code == 0 and "ran 0 trial(s)" in again.out


def test_report_section_averages_per_level_from_the_table() -> None:
    import pandas as pd

    from ablations.report.diagnostics import diagnostics_section

    rows = []
    for key, init, stds, grads in [
        ("a", "normal", [0.2, 0.02], [1.0, 4.0]),
        ("b", "normal", [0.4, 0.04], [3.0, 4.0]),
        ("c", "xavier", [0.6, 0.5], [2.0, 1.0]),
    ]:
        for i, s in enumerate(stds, 1):
            rows.append({"key": key, "init": init, "kind": "act", "index": i, "act_std": s, "dead": 0.5})
        for i, g in enumerate(grads, 1):
            rows.append({"key": key, "init": init, "kind": "weight", "index": i, "grad_norm": g, "last": g / 2})
    text = diagnostics_section(pd.DataFrame(rows), {"init": ["normal", "xavier"]}, {})
    assert "| init | normal | 0.3 | 0.03 | 0.5 | 0.5 | 0.5 |" in text  # ratios 1/4 and 3/4 average 0.5
    assert "| init | xavier | 0.6 | 0.5 | 0.5 | 2 | 2 |" in text
