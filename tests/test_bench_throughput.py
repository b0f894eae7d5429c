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


# -- faults: what hosts do on errors, and when a fault comes --------------------------------
import asyncio  # noqa: E402
import re  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import httpx  # noqa: E402
import throughput_faults  # noqa: E402  (bench/ is on sys.path once throughput.py is loaded)
import throughput_hosts  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "protocol"
DOWN = (b"<scheduler_reply>\n<message priority=\"low\">Server can't open database</message>\n"
        b"<request_delay>3600</request_delay>\n<project_is_down/>\n</scheduler_reply>\n")
# handle_request.cpp's reply when the user lookup fails: a wrong key, or MariaDB lost meanwhile.
KEY_REFUSED = (b"<scheduler_reply>\n<message priority=\"notice\">Invalid or missing account key.  To fix, remove "
               b"and add this project.</message>\n<request_delay>3600</request_delay>\n</scheduler_reply>\n")


def test_backoff_doubles_from_the_base_up_to_the_cap_with_the_clients_jitter():
    for n in range(1, 8):
        for _ in range(50):
            wait = throughput_hosts.backoff(n, 1.0, 30.0)
            assert min(30.0, 2.0 ** n) * 0.5 <= wait <= min(30.0, 2.0 ** n)


def test_fault_plan_and_when_faults_come():
    assert throughput_faults.parse_fault_at("15") == ("seconds", 15.0)
    assert throughput_faults.parse_fault_at("2.5s") == ("seconds", 2.5)
    assert throughput_faults.parse_fault_at("30%") == ("fraction", 0.3)
    for bad in ("soon", "-3", "100%", "150%"):
        with pytest.raises(ValueError):
            throughput_faults.parse_fault_at(bad)
    first, second = throughput_faults.plan(["kill-apache", "restart-mysql"], [])
    assert (first.service, first.when, first.value) == ("apache", "fraction", 0.3)
    assert (second.service, second.when, second.value) == ("mysql", "fraction", 0.6)
    assert not first.due(100.0, 299, 1000) and first.due(0.0, 300, 1000)
    (timed,) = throughput_faults.plan(["restart-mysql"], ["20"])
    assert not timed.due(19.9, 10**6, 10) and timed.due(20.0, 0, 10)
    for kinds, at in ((["kill-mysql"], []), (["kill-apache"], ["10", "20"])):
        with pytest.raises(ValueError):
            throughput_faults.plan(kinds, at)


def work_reply() -> tuple[bytes, list[str]]:
    """A real scheduler reply with four tasks (no delay before the next request) and their names."""
    work = (FIXTURES / "scheduler_reply_work.xml").read_bytes().replace(
        b"<request_delay>7.000000</request_delay>", b"<request_delay>0</request_delay><hostid>42</hostid>")
    return work, [t.name for t in throughput_hosts.p.parse_scheduler_reply(work).tasks]


def scripted_project(script: list[httpx.Response], names: list[str], draining: asyncio.Event,
                     requests: list[str] | None = None, uploads: list[bytes] | None = None):
    """A mock project: every upload succeeds; the scheduler answers from script, then
    acknowledges the results named and lets the host drain. Requests and uploads are kept."""
    script = list(script)

    def handler(request: httpx.Request) -> httpx.Response:
        if "file_upload_handler" in str(request.url):
            if uploads is not None:
                uploads.append(request.content)
            return httpx.Response(200, content="<data_server_reply><status>0</status></data_server_reply>")
        if requests is not None:
            requests.append(request.content.decode())
        if script:
            return script.pop(0)
        draining.set()
        acks = "".join(f"<result_ack><name>{n}</name></result_ack>" for n in names)
        return httpx.Response(200, content=f"<scheduler_reply>{acks}<request_delay>0</request_delay></scheduler_reply>")
    return handler


def run_host(handler, draining: asyncio.Event):
    """One simulated host (4 CPUs, no compute time, tiny backoffs) against a mock project until it drains."""
    args = SimpleNamespace(ncpus=4, compute=0.0, output_repeat=1, work_req=60.0, idle=0.01, backoff=0.001,
                           backoff_max=0.01)
    rec = throughput_hosts.Recorder()
    host = throughput_hosts.SimulatedHost(0, "t", "auth", args)

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await asyncio.wait_for(host.loop(client, "http://127.0.0.1:1/p_cgi/cgi", rec, asyncio.Event(), draining), 20)

    asyncio.run(go())
    return host, rec


def test_a_host_retries_through_errors_reports_again_and_uploads_again():
    """A scheduler that answers 503, then garbage, then work; an upload handler that refuses a
    connection, then says 'transient'; the report's reply lost (500), then 'project down'.
    The host backs off each time, uploads the file whole again and sends the same report
    until it is acknowledged."""
    work, names = work_reply()
    assert len(names) == 4
    script = [httpx.Response(503), httpx.Response(200, content=b"<html>not a reply"), httpx.Response(200, content=work),
              httpx.Response(500), httpx.Response(200, content=DOWN)]
    requests, uploads = [], []
    draining = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        if "file_upload_handler" in str(request.url):
            uploads.append(body)
            if len(uploads) == 1:
                raise httpx.ConnectError("connection refused", request=request)
            status = 1 if len(uploads) == 2 else 0
            return httpx.Response(200, content=f"<data_server_reply><status>{status}</status></data_server_reply>")
        requests.append(body)
        if script:
            return script.pop(0)
        draining.set()
        acks = "".join(f"<result_ack><name>{n}</name></result_ack>" for n in names)
        return httpx.Response(200, content=f"<scheduler_reply>{acks}<request_delay>0</request_delay></scheduler_reply>")

    host, rec = run_host(handler, draining)
    assert rec.errors == {"scheduler: HTTP 503": 1, "scheduler: not a reply": 1, "upload: ConnectError": 1,
                          "upload: transient error": 1, "scheduler: HTTP 500": 1,
                          "scheduler: project down (Server can't open database)": 1}
    assert len(requests) == 6 and len(uploads) == 6
    # Each failed file went again whole, from offset 0, the same bytes each time.
    by_file: dict[str, list[str]] = {}
    for body in uploads:
        by_file.setdefault(re.search(r"<name>([^<]+)</name>", body).group(1), []).append(body)
    assert sorted(len(sent) for sent in by_file.values()) == [1, 1, 2, 2]
    assert all(len(set(sent)) == 1 and "<offset>0</offset>" in sent[0] for sent in by_file.values())
    # The three reports (lost, refused, acknowledged) carry the same four results.
    for body in requests[3:]:
        assert sorted(re.findall(r"<result>\s*<name>([^<]+)</name>", body)) == sorted(names)
    assert rec.counts == {"rpc_retries": 4, "upload_retries": 2, "reports_resent": 8}
    assert rec.acked == set(names) == rec.reported and not host.finished
    # rpc_seqno goes up with every request sent once the host has an id, answered or not.
    assert [int(re.search(r"<rpc_seqno>(\d+)", b).group(1)) for b in requests[3:]] == [3, 4, 5]
    assert len(rec.events["outages"]) >= 2 and rec.host_view()["errors"] == 6


def test_a_task_sent_again_that_the_host_already_has_is_not_run_again():
    """The scheduler's resend of lost results can send again a task whose report it failed to
    store: the host keeps it (as BOINC's client does), reports it once more, computes it once."""
    work, names = work_reply()
    requests, uploads, draining = [], [], asyncio.Event()
    handler = scripted_project([httpx.Response(200, content=work)] * 2, names, draining, requests, uploads)
    host, rec = run_host(handler, draining)
    assert len(uploads) == 4 and rec.tasks == 4 and not rec.given_twice
    assert rec.counts == {"tasks_already_held": 4, "reports_resent": 4}
    assert rec.acked == set(names) and not host.finished
    for body in requests[1:]:
        assert sorted(re.findall(r"<result>\s*<name>([^<]+)</name>", body)) == sorted(names)


def test_a_refused_account_key_is_a_failure_backed_off_not_an_hours_wait():
    assert throughput_hosts.p.parse_scheduler_reply(KEY_REFUSED).account_key_refused
    assert not throughput_hosts.p.parse_scheduler_reply(DOWN).account_key_refused
    work, names = work_reply()
    draining = asyncio.Event()
    script = [httpx.Response(200, content=work), httpx.Response(200, content=KEY_REFUSED)]
    host, rec = run_host(scripted_project(script, names, draining), draining)
    assert rec.errors == {"scheduler: account key refused": 1}
    assert rec.counts == {"rpc_retries": 1, "reports_resent": 4} and rec.acked == set(names)
