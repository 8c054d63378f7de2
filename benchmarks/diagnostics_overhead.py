"""Cost of the per-layer diagnostics relative to training, on the quickstart's model and data.

Times, in one process, a full training run of the quickstart's 4-layer MLP (12 epochs) and what the
diagnostics add to it (one probe at init, one after each epoch), interleaved over repeats so that
load from other processes hits both alike. Prints the per-run seconds and the overhead in percent.

    .venv/bin/python benchmarks/diagnostics_overhead.py [--repeats 5] [--norm batch] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ablations.config import load_space
from ablations.data import load_dataset
from ablations.diagnostics import Diagnostics, first_batch
from ablations.models import build_model
from ablations.train import fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space("search_spaces/quickstart.yaml", [f"norm={args.norm}", "init=kaiming", "activation=relu"])
    config = space.trial_config({})
    data = load_dataset(config.data)
    x, y = first_batch(data.train)
    train_s, diag_s = [], []
    for seed in range(args.repeats):
        torch.manual_seed(seed)
        model = build_model(config.model, data.input_shape, data.num_classes, x)
        probe = Diagnostics(model, x, y)
        start = time.perf_counter()
        probe.at_init()
        at_init = time.perf_counter() - start
        per_epoch = 0.0
        start = time.perf_counter()
        for _ in fit(model, data, config.train, seed):
            t = time.perf_counter()
            probe.after_epoch()
            per_epoch += time.perf_counter() - t
        train_s.append(time.perf_counter() - start - per_epoch)  # the fit loop alone
        diag_s.append(at_init + per_epoch)
    train = statistics.median(train_s)
    diag = statistics.median(diag_s)
    print(f"training (12 epochs, no probe): {train:.3f} s  diagnostics: {diag:.3f} s  overhead: {diag / train:.1%}")


if __name__ == "__main__":
    main()
