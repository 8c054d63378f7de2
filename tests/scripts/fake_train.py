"""A training script for the script-mode tests: no torch, so it starts fast. Its "accuracy"
grows with train.lr; options in the config make it crash, ignore pruning, fork a child or print
a lot. It appends what happened to events.log in the current folder: `trial_id event detail`."""

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import ablations

cfg = ablations.config({"train": {"epochs": 4, "lr": 0.1, "sleep": 0.0}, "model": {"act": "relu"}, "seed": 0})
train, model = cfg["train"], cfg["model"]
trial = cfg.get("trial_id", "standalone")


def event(name: str, detail: object = "") -> None:
    with open("events.log", "a") as log:
        log.write(f"{trial} {name} {detail}\n")


event("start", os.getpid())
event("env", json.dumps({k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "ABLATE_DEVICE", "CUDA_VISIBLE_DEVICES")}))
if model["act"] == "broken" and Path("broken.flag").exists():
    print("building the model...")
    print("RuntimeError: mat1 and mat2 shapes cannot be multiplied (simulated)", file=sys.stderr)
    sys.exit(1)
if train.get("fork_child"):  # like a data-loader worker: inherits the channel, must not use it
    child = os.fork()
    if child == 0:
        try:
            ablations.report(1, val_acc=0.0)
        except RuntimeError as err:
            event("child-refused", str(err).split(",")[0].replace(" ", "_"))
        time.sleep(600)
        os._exit(0)
    event("child", child)
if train.get("chatty"):  # a thread printing while the main thread trains and reports
    threading.Thread(target=lambda: [print("x" * 200) for _ in range(20000)], daemon=True).start()

for epoch in range(1, train["epochs"] + 1):
    time.sleep(train["sleep"])
    val_acc = min(1.0, train["lr"] * epoch / train["epochs"] + 0.01 * cfg["seed"])
    if train.get("explode"):
        val_acc = math.nan
    for i in range(200 if train.get("chatty") else 1):
        print(f"epoch {epoch} batch {i} loss {1 - val_acc:.4f}")
    if ablations.report(epoch, val_acc=val_acc, train_loss=1 - val_acc, score=10 * val_acc):
        event("pruned", epoch)
        if not train.get("ignore_pruning"):
            sys.exit(0)
        signal.signal(signal.SIGTERM, lambda *_: event("sigterm"))  # and go on: SIGKILL must follow
        while True:
            time.sleep(0.1)
event("finished", train["epochs"])
