"""The throughput bench's own arithmetic (bench/throughput.py): percentiles and the steady rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("httpx")
BENCH = Path(__file__).resolve().parent.parent / "bench" / "throughput.py"
spec = importlib.util.spec_from_file_location("bench_throughput", BENCH)
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert throughput.percentile(values, 50) == 50
    assert throughput.percentile(values, 99) == 99
    assert throughput.percentile([7.0], 99) == 7
    assert throughput.percentile([], 50) == 0


def test_steady_rate_leaves_out_ramp_up_and_tail():
    # 10 s of nothing, then 10 jobs/s to 100, then a slow tail of 1 job/s.
    samples = [(float(t), 0) for t in range(10)] + [(10.0 + t, 10 * t) for t in range(1, 10)]
    samples += [(19.0 + t, 90 + t) for t in range(1, 11)]
    assert throughput.steady_rate(samples, 100) == pytest.approx(10.0)


def test_steady_rate_of_a_run_that_stopped_early_or_never_started():
    assert throughput.steady_rate([(0.0, 10), (10.0, 50)], 100) == pytest.approx(4.0)
    assert throughput.steady_rate([(0.0, 0), (5.0, 0)], 100) == 0
    assert throughput.steady_rate([], 100) == 0


def test_only_loopback_is_a_target():
    assert throughput.loopback_only("http://127.0.0.1:8080/p_cgi/cgi")
    assert throughput.loopback_only("http://localhost/x")
    for url in ("http://10.0.0.5/x", "http://boinc.example.org/x"):
        with pytest.raises(SystemExit):
            throughput.loopback_only(url)


def test_process_accounting_records(tmp_path):
    acct = throughput.ProcessAccounting(tmp_path)
    assert acct.comp_t(100) == 100
    assert acct.comp_t((2 << 13) | 5) == 5 << 6
    record = acct.RECORD.pack(0, 3, 0, 0, 1000, 1000, 42, 1, 0, 0.5, 30, 20, 0, 0, 0, 0, 0, 0, b"cgi")
    other = acct.RECORD.pack(0, 2, 0, 0, 0, 0, 43, 1, 0, 0.0, 500, 0, 0, 0, 0, 0, 0, 0, b"old")
    acct.path.write_bytes(record * 2 + other)
    assert acct.RECORD.size == 64
    assert acct.cpu_by_command() == {"cgi": (2, 1.0)}
