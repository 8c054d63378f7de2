"""Small pieces of the study and worker layers: masking secrets, devices and threads per worker."""

from __future__ import annotations

import pytest
import torch

from ablations import workers
from ablations.device import cpu_threads
from ablations.study import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://ablate:s3cr:et@db:5432/x", "postgresql://ablate:***@db:5432/x"),
        (
            "ablate run s.yaml --storage mysql+pymysql://u:pw@h/db --yes",
            "ablate run s.yaml --storage mysql+pymysql://u:***@h/db --yes",
        ),
        (
            "postgresql://db/x?user=u&password=pw&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        ("postgresql://ablate@db/x", "postgresql://ablate@db/x"),
        ("runs/other.journal", "runs/other.journal"),
    ],
)
def test_mask_url_hides_every_password(url, masked):
    assert mask_url(url) == masked


def test_workers_spread_over_every_gpu_and_share_them_when_more(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert workers.worker_devices("auto", 5) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert workers.worker_devices("cuda", 2) == ["cuda:0", "cuda:1"]
    assert workers.worker_devices("cuda:1", 3) == ["cuda:1"] * 3
    assert workers.worker_devices("cpu", 2) == ["cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert workers.worker_devices("auto", 2) == ["cpu", "cpu"]


@pytest.mark.parametrize("cores", [1, 2, 4, 16, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_threads_per_worker_never_oversubscribe_the_cores(monkeypatch, cores, count):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    threads = cpu_threads(None, count)
    assert threads >= 1
    if count < cores:
        assert count * threads <= cores - 1 or (cores == 1 and threads == 1)
    assert cpu_threads(3, count) == 3
