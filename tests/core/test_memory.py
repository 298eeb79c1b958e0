"""Memory probes: process RAM everywhere, CUDA counters only where CUDA already lives."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.training import memory

def test_cpu_reading_sees_process_and_system_memory():
    r = memory.read()
    assert 0 < r.process_rss <= r.process_peak
    assert 0 < r.system_available <= r.system_total and r.process_rss < r.system_total
    json.dumps(r.to_dict())  # plain values only: it travels in events and metrics.jsonl


def test_rss_follows_a_large_allocation():
    before = memory.read().process_rss
    block = torch.ones(64 * 2**20 // 4 * 3)  # 192 MiB, touched
    after = memory.read()
    assert after.process_rss - before > 150 * 2**20
    assert after.process_peak >= after.process_rss
    del block


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.is_initialized(), reason="CUDA already initialised")
def test_polling_never_creates_a_cuda_context():
    for _ in range(3):
        r = memory.read()
    assert not torch.cuda.is_initialized()
    assert all(d.source == "nvml" for d in r.devices)  # only NVML may report devices before CUDA starts


def test_cuda_counters_are_read_per_device_once_cuda_is_initialised(monkeypatch):
    """Simulates an initialised two-GPU process to check which counter lands where."""
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch._C, "_cuda_hasPrimaryContext", lambda i: True, raising=False)  # uses both
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: ((10 - i) * gib, 16 * gib))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: (i + 1) * gib)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: (i + 2) * gib)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: (i + 3) * gib)
    r = memory.read()
    assert [d.device for d in r.devices] == ["cuda:0", "cuda:1"]
    d1 = r.device("cuda:1")
    assert (d1.allocated, d1.reserved, d1.peak, d1.total, d1.used) == (2 * gib, 3 * gib, 4 * gib, 16 * gib, 7 * gib)
    assert d1.fraction == pytest.approx(3 / 16)


def test_polling_a_process_that_uses_one_gpu_of_several_leaves_the_others_alone(monkeypatch):
    """Training on cuda:0 of a 4-GPU machine: the gauges must not create contexts (and
    take ~0.5 GB each) on cuda:1..3 by asking them for their free memory."""
    read = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch._C, "_cuda_hasPrimaryContext", lambda i: i == 0, raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: read.append(i) or (1, 2))
    for name in ("memory_allocated", "memory_reserved", "max_memory_allocated"):
        monkeypatch.setattr(torch.cuda, name, lambda i: 0)
    monkeypatch.setattr(memory, "_nvml", lambda: [memory.DeviceMemory(f"cuda:{i}", None, None, None, 8, 1, "nvml")
                                                   for i in range(4)])
    r = memory.read()
    assert read == [0]
    assert [(d.device, d.source) for d in r.devices] == [("cuda:0", "torch"), ("cuda:1", "nvml"), ("cuda:2", "nvml"),
                                                         ("cuda:3", "nvml")]
    memory.read(["cuda:2"])  # a device the caller is about to use may be read
    assert read == [0, 0, 2]


@pytest.mark.cuda
def test_real_cuda_allocation_shows_in_the_reading():
    x = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")
    r = memory.read(["cuda:0"])
    d = r.device("cuda:0")
    assert d.allocated >= 64 * 2**20 and d.reserved >= d.allocated and d.peak >= d.allocated
    assert d.total > d.reserved and d.used > 0
    del x


def test_fmt_bytes():
    assert memory.fmt_bytes(None) == "?"
    assert memory.fmt_bytes(512) == "512 B"
    assert memory.fmt_bytes(3 * 2**20) == "3.0 MiB"
    assert memory.fmt_bytes(int(1.5 * 2**30)) == "1.5 GiB"
