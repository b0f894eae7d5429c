"""URL_BASE/metrics scraped by Debian's real Prometheus, on the session's shared project: behind
the ops area's user admin (401 without it), and what Prometheus stores is what `status --json`
shows. `./run test` unpacks Prometheus from Debian's package (PROMETHEUS names the binary)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .conftest import Stack, ensure_example_app, free_port, run_cli
from .test_apps_jobs import write_jobs
from .test_secrets import revealed

PROMETHEUS = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
pytestmark = pytest.mark.skipif(not PROMETHEUS, reason="Debian's prometheus is not here: `./run test` unpacks "
                                                       "it (apt-get download prometheus), or set PROMETHEUS")
WAIT_S = 90


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def results_in_status(stack: Stack) -> dict[tuple[str, str], int]:
    figures = json.loads(run_cli("status", "--json", cwd=stack.dir).stdout)["metrics"]
    return {(app, state): n for app, states in figures["results"].items() for state, n in states.items()}


def query(prometheus: str, expr: str) -> list[dict]:
    status, body = get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def scraped_results(prometheus: str) -> dict[tuple[str, str], int]:
    return {(r["metric"]["app"], r["metric"]["state"]): int(float(r["value"][1]))
            for r in query(prometheus, "boinc_results")}


def scraped_now(url: str, password: str) -> str:
    """/metrics once the new jobs are in it: create_work makes the workunits and the transitioner
    their results moments later, and the feeder may be starting again after an earlier test's `up`."""
    deadline, text = time.monotonic() + WAIT_S, ""
    while time.monotonic() < deadline:
        status, text = get(url, ("admin", password))
        assert status == 200 and "\nboinc_up 1\n" in text, text[:500]
        if 'boinc_daemon_up{daemon="feeder"} 1' in text and 'app="uppercase",state="unsent"' in text:
            return text
        time.sleep(2)
    pytest.fail(f"no feeder up or no unsent uppercase result in {WAIT_S} s:\n{text[:3000]}")


def test_prometheus_scrapes_what_status_shows(stack: Stack, tmp_path):
    ensure_example_app(stack, "uppercase")
    batch = json.loads(run_cli("submit", "uppercase", "--jobs", write_jobs(tmp_path / "jobs", 3, prefix="metrics"),
                               "--json", cwd=stack.dir).stdout)["batch"]
    try:
        prometheus_agrees_with_status(stack, tmp_path)
    finally:
        # The shared project's other tests see no jobs of this one's.
        run_cli("batch", "abort", batch, cwd=stack.dir, check=False)


def prometheus_agrees_with_status(stack: Stack, tmp_path) -> None:
    url = f"{stack.local}/metrics"
    assert get(url)[0] == 401
    password = revealed(stack)["ops"]["value"]
    scraped_now(url, password)

    (tmp_path / "password").write_text(password)
    (tmp_path / "password").chmod(0o600)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 3s, scrape_timeout: 3s}\nscrape_configs:\n  - job_name: boincserver\n"
        f"    metrics_path: /metrics\n    basic_auth: {{username: admin, password_file: {tmp_path / 'password'}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{stack.port}']}}]\n")
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "w") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        # Prometheus stores what it scraped; status reads the same sources a moment apart, so the
        # two are compared until they agree (the jobs wait: no client is attached to this project).
        deadline, seen = time.monotonic() + WAIT_S, None
        while time.monotonic() < deadline:
            try:
                scraped = scraped_results(prometheus)
            except (OSError, AssertionError):
                scraped = {}
            shown = results_in_status(stack)
            seen = (scraped, shown)
            if scraped and scraped == shown:
                break
            time.sleep(2)
        else:
            pytest.fail(f"Prometheus and status never agreed: {seen}\n{(tmp_path / 'prometheus.log').read_text()[-2000:]}")
        assert scraped[("uppercase", "unsent")] >= 3
        _, targets = get(f"{prometheus}/api/v1/targets")
        assert json.loads(targets)["data"]["activeTargets"][0]["health"] == "up"
        (feeder,) = query(prometheus, 'boinc_daemon_up{daemon="feeder"}')
        assert feeder["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
