"""``benchmarks/host_waits.py``: which calls count as host waits, where they are charged, and a
tiny end-to-end run."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from ttblur.types import finite_range


def test_cpu_counts_every_host_wait_and_charges_the_ttblur_frame(load_benchmark):
    waits = load_benchmark("host_waits")
    x = torch.tensor([0.5, -1.0, 2.0])
    counter = waits.WaitCounter(torch.device("cpu"))
    with counter:
        finite_range(x, "x")  # one .tolist() inside ttblur.types (minimum and maximum)
        x.sum().item()
        float(x.max())
        x.tolist()
        bool(x.any())
        x.to("cpu")
        x.cpu()
        x[x > 0]
        torch.nonzero(x)
        y = (x * 2 + 1).to(torch.float64)  # arithmetic and a dtype change: no wait
    assert y.dtype == torch.float64
    kinds: dict[str, int] = {}
    for (stage, site, kind), calls in counter.sites.items():
        assert stage == "setup + rsdm"  # no stage callback yet
        kinds[kind] = kinds.get(kind, 0) + calls
        if site != "(outside ttblur)":
            assert site.startswith("types.py:") and site.endswith("(finite_range)")
            assert (kind, calls) == ("tolist", 1)
    assert kinds == {
        "float": 1,
        "item": 1,
        "tolist": 2,
        "bool": 1,
        "to": 1,
        "cpu": 1,
        "bool index": 1,
        "nonzero": 1,
    }
    counter.stage_done("rsdm", {})
    with counter:
        x.max().item()
    assert counter.sites[("dbcgm", "(outside ttblur)", "item")] == 1


def test_on_cuda_only_calls_touching_the_device_count(load_benchmark):
    waits = load_benchmark("host_waits")
    counter = waits.WaitCounter(torch.device("cuda"))
    host = torch.ones(3)
    assert counter.kind(Tensor.item, (host,), {}) is None  # a host tensor: no wait
    assert counter.kind(Tensor.cpu, (host,), {}) is None
    assert counter.kind(Tensor.to, (host, "cuda"), {}) == "to"  # a blocking upload
    assert counter.kind(Tensor.to, (host,), {"device": torch.device("cuda", 0)}) == "to"
    assert counter.kind(Tensor.to, (host, "cpu"), {}) is None
    assert counter.kind(Tensor.to, (host, torch.float16), {}) is None
    assert counter.kind(Tensor.to, (host, "cuda"), {"non_blocking": True}) is None  # queued
    assert counter.kind(Tensor.to, (host, "cuda", None, True), {}) is None
    assert counter.kind(Tensor.cuda, (host,), {}) == "cuda"
    assert counter.kind(torch.tensor, ([1.0],), {"device": "cuda"}) == "tensor(device=)"
    assert counter.kind(torch.tensor, ([1.0],), {"device": "cpu"}) is None
    assert counter.kind(torch.where, (host > 0,), {}) is None
    assert counter.kind(Tensor.__getitem__, (host, host > 0), {}) is None


def _table(text: str, header: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_tiny_run_counts_waits_per_stage_for_two_patch_caps(load_benchmark, capsys):
    waits = load_benchmark("host_waits")
    argv = ["--clip", "9x48x64", "--patch-size", "16", "--max-patches", "1", "3"]
    report = waits.main(argv)
    assert report in capsys.readouterr().out
    assert "patches 1 / 3" in report
    stages = _table(report, "| stage |")
    names = [row[0] for row in stages]
    assert names[-1] == "**all**" and "setup + rsdm" in names and "synthesis" in names
    total = stages[-1]
    assert int(total[1]) == sum(int(row[1]) for row in stages[:-1])
    assert int(total[2]) == sum(int(row[2]) for row in stages[:-1])
    per_patch = (int(total[2]) - int(total[1])) / 2
    assert float(total[3]) == pytest.approx(per_patch, abs=0.005)
    sites = _table(report, "| call site |")
    assert 1 <= len(sites) <= 20
    assert all(int(row[2]) >= 0 and int(row[3]) >= 0 for row in sites)
