"""What a W&B outage costs a sweep: `ablate run --wandb online` against a server that refuses
connections and one that accepts them and never answers, next to the same sweep with W&B disabled.

    python benchmarks/wandb_outage.py [--seeds 2] [--epochs 3] [--timeout 15]

Each sweep (4 cells x SEEDS tiny MLPs on digits, no pruning, no report) runs from a fresh folder
as one `ablate run` process with a fake API key, so that W&B really tries to go online. Prints
markdown: wall time, the time added over the disabled sweep, how many runs tried online (W&B
makes a `run-*` folder for each) and how many were written offline for `wandb sync`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPACE = """
name: outage
seeds: {seeds}
pruner: {{name: none}}
model: {{width: 8, depth: 1}}
train: {{epochs: {epochs}, lr: 0.05, batch_size: 128}}
factors:
  norm: [none, batch]
  activation: [relu, tanh]
"""


def refusing_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def black_hole_url() -> str:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}"


def sweep(space: str, mode: str, url: str | None, timeout: float | None) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "space.yaml").write_text(space)
        env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": mode}
        env.pop("WANDB_ERROR_REPORTING", None)
        if url:
            env.update(WANDB_BASE_URL=url, WANDB_API_KEY="f" * 40)
        if timeout is not None:
            env["ABLATE_WANDB_TIMEOUT"] = str(timeout)
        command = [sys.executable, "-m", "ablations.cli", "run", "space.yaml", "--no-report", "--wandb", mode]
        began = time.monotonic()
        subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
        seconds = time.monotonic() - began
        runs = Path(folder, "runs", "wandb")
        return seconds, len(list(runs.glob("run-*"))), len(list(runs.glob("offline-run-*")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=None, help="ABLATE_WANDB_TIMEOUT; default: the suite's")
    args = parser.parse_args()
    space = SPACE.format(seeds=args.seeds, epochs=args.epochs)
    trials = 4 * args.seeds
    disabled = sweep(space, "disabled", None, args.timeout)[0]
    rows = [("W&B disabled", disabled, 0, 0)]
    for label, url in (("online, connection refused", refusing_url()), ("online, no answer", black_hole_url())):
        rows.append((label, *sweep(space, "online", url, args.timeout)))
    from ablations.tracking import wandb_timeout

    limit = args.timeout if args.timeout is not None else wandb_timeout()
    print(f"## W&B outage ({trials} trials x {args.epochs} epochs, one process, timeout {limit:.0f} s)\n")
    print("| W&B | wall time | added | runs tried online | runs written offline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, seconds, online, offline in rows:
        print(f"| {label} | {seconds:.1f}s | {seconds - disabled:+.1f}s | {online} | {offline} |")
    extra = " ".join(f"--{k} {v}" for k, v in (("seeds", args.seeds), ("epochs", args.epochs)))
    timeout = f" --timeout {args.timeout:g}" if args.timeout is not None else ""
    print(f"\nReproduce: `python benchmarks/wandb_outage.py {extra}{timeout}`")


if __name__ == "__main__":
    main()
