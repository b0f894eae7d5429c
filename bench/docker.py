#!/usr/bin/env python3
"""Docker overhead: submit-to-result time of a trivial Docker job against the same job native.

Run with `python bench/docker.py` (`./run bench` runs it too). It makes a throwaway project on
a free port with two apps doing the same thing (uppercase a line): BOINC's native example app
and a Docker app whose Dockerfile is FROM the pinned base OS image. `boincserver volunteer up`
starts the BOINC 8.2 client built from source; one job of each app warms it (the app's files
downloaded, the base image's layers on the engine). Then, one at a time and alternating, each
job is timed from `create-work` until `results` says done (validated and assimilated). The
ratio of the medians is what running in a container costs per job here. The project, the
volunteer and their volumes are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from boincserver import __version__, pins

CLI = [sys.executable, "-m", "boincserver"]
TIMEOUT = 600
NUDGE = 10  # seconds between `volunteer update`s while a job is pending
DOCKERFILE = f"""FROM {pins.BASE_OS_IMAGE}
WORKDIR /app
CMD ["sh", "-c", "tr a-z A-Z < in > out"]
"""


def cli(*args: str, cwd: Path) -> str:
    done = subprocess.run(CLI + list(args), cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0,):
        sys.exit(f"failed: boincserver {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def job_seconds(pdir: Path, app: str, wu: str, src: Path, *extra: str) -> float:
    """From create-work to `results` saying done. The client is nudged every NUDGE seconds, as
    a user would: a request that comes before the feeder has the job gets none, and the client
    then backs off for minutes."""
    started = time.monotonic()
    cli("create-work", app, str(src), "--wu-name", wu, *extra, cwd=pdir)
    nudged = 0.0
    while time.monotonic() - started < TIMEOUT:
        if time.monotonic() - nudged > NUDGE:
            cli("volunteer", "update", cwd=pdir)
            nudged = time.monotonic()
        done = subprocess.run(CLI + ["results", "--wu", wu, "--json"], cwd=pdir, capture_output=True, text=True)
        state = json.loads(done.stdout)["jobs"][0]["state"] if done.stdout.strip() else "?"
        if state == "done":
            took = time.monotonic() - started
            print(f"  {wu}: {took:.1f} s", file=sys.stderr)
            return took
        if state == "failed":
            sys.exit(f"job {wu} failed:\n{done.stdout}")
        time.sleep(0.5)
    log = subprocess.run(CLI + ["volunteer", "logs", "--tail", "60"], cwd=pdir, capture_output=True, text=True)
    sys.exit(f"job {wu} not done in {TIMEOUT}s; the client's log ends:\n{log.stdout}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="timed jobs of each kind (after one warm-up each)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    times: dict[str, list[float]] = {"native": [], "docker": []}
    with tempfile.TemporaryDirectory(prefix="boincserver-bench-docker-") as tmp:
        port = free_port()
        pdir = Path(tmp) / f"benchdk_{os.getpid()}"
        cli("init", str(pdir), "--url-base", f"http://127.0.0.1:{port}", "--http-port", str(port), cwd=Path(tmp))
        try:
            cli("up", cwd=pdir)
            cli("app", "add", "native", "--example", "uppercase", cwd=pdir)
            app_dir = Path(tmp) / "upper_docker"
            app_dir.mkdir()
            (app_dir / "Dockerfile").write_text(DOCKERFILE)
            cli("app", "add", "indocker", "--docker", str(app_dir), cwd=pdir)
            cli("volunteer", "up", cwd=pdir)
            src = Path(tmp) / "line.txt"
            src.write_text("a trivial job\n")
            # BOINC's uc2 burns 20 CPU seconds unless told otherwise: told, it does what the
            # Docker app does, uppercase its input, and nothing else.
            kinds = (("native", "native", ("--command-line", "--cpu_time 0")), ("docker", "indocker", ()))
            for kind, app, extra in kinds:
                job_seconds(pdir, app, f"warm_{kind}", src, *extra)
            for i in range(args.jobs):
                for kind, app, extra in kinds:
                    times[kind].append(job_seconds(pdir, app, f"timed_{kind}_{i}", src, *extra))
        finally:
            subprocess.run(CLI + ["volunteer", "down"], cwd=pdir, capture_output=True)
            subprocess.run(CLI + ["down", "--volumes", "--yes"], cwd=pdir, capture_output=True)

    median = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "boincserver": __version__, "boinc_client": pins.CLIENT_VERSION, "jobs_each": args.jobs,
        "native_s": {"median": round(median["native"], 1), "all": [round(t, 1) for t in times["native"]]},
        "docker_s": {"median": round(median["docker"], 1), "all": [round(t, 1) for t in times["docker"]]},
        "docker_over_native": round(median["docker"] / median["native"], 2),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"boincserver {__version__}, BOINC client {pins.CLIENT_VERSION}: submit-to-result, warm client")
    print(f"  native app (uppercase)         {figures['native_s']['median']:7.1f} s  (median of {args.jobs})")
    print(f"  the same job as a Docker app   {figures['docker_s']['median']:7.1f} s  (median of {args.jobs})")
    print(f"  Docker / native                {figures['docker_over_native']:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
