#!/usr/bin/env python3
"""Task throughput: N simulated hosts speak BOINC's protocol to a project; jobs per second.

Makes a throwaway project on a free port (or uses a running one with --project-dir), installs
the uppercase example app, and for each N of --hosts submits M jobs (--jobs; one replica each:
target_nresults 1, min_quorum 1) as one batch, then runs N hosts in one asyncio loop (httpx),
each looping: a scheduler RPC (reporting what it finished, asking for work), fake compute
(--compute seconds a task), one upload per output through file_upload_handler, and again.
The validator and assimilator of the app run as in production. All hosts share one account
(BOINC's create_account RPC) and have a host row each (their own host_cpid).

Figures per N: completed_per_s (assimilated jobs per second in steady state: the slope of the
batch's assimilated count, sampled each second from the database, between 10 % and 90 % of
the jobs), RPC and upload latency, jobs per RPC, the generator's CPU time over wall time x
cores, each container's CPU seconds and peak memory (docker stats), and the apache container's
CPU by process. Then the exactly-once check (boinc.database.delivery_problems) over the
database and the results folder: a run that lost or duplicated anything prints what and exits
non-zero. Traffic goes to loopback addresses only.

--fault kill-apache / restart-mysql (bench/throughput_faults.py) crashes the apache container
or restarts MariaDB during each run; hosts back off and retry as BOINC's client does
(bench/throughput_hosts.py), the run must drain and pass the same check. Printed per fault:
the seconds until the container ran again, a scheduler reply was good, work was handed out and
a job was assimilated, and what hosts saw (errors by kind, retries, resent reports, outages).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from boincserver.boinc import database as db  # noqa: E402
from boincserver.boinc import protocol as p  # noqa: E402
from jobs import CLI, Project, measured_project, run  # noqa: E402
from throughput_faults import Fault, plan  # noqa: E402
from throughput_hosts import Recorder, SimulatedHost, create_account, loopback_only  # noqa: E402
from throughput_monitor import (Monitor, ProcessAccounting, SqlSession, container_cpu,  # noqa: E402
                                containers_of, percentile, process_cpu, steady_rate)


def submit(project: Project, tmp: Path, jobs: int, tag: str) -> tuple[int, list[str]]:
    folder = tmp / f"in-{tag}"
    folder.mkdir(parents=True)
    names = [f"tp_{tag}_{i}" for i in range(jobs)]
    with open(folder / "jobs.txt", "w") as f:
        for i, name in enumerate(names):
            (folder / f"{i}.txt").write_text(f"input of {name}\n")
            f.write(f"--wu-name {name} {i}.txt\n")
    out = run(CLI + ["-C", str(project.dir), "submit", "uppercase", "--jobs", str(folder / "jobs.txt"),
                     "--target-nresults", "1", "--min-quorum", "1", "--json"])
    return int(json.loads(out.stdout)["batch"]), names


def exactly_once(project: Project, sql: SqlSession, batch: int, names: list[str], rec: Recorder) -> list[dict]:
    workunits = [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]))
                 for r in sql.rows(db.BATCH_WORKUNITS, (batch,), patience=60)]
    results = [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
               for r in sql.rows(db.BATCH_RESULTS, (batch,), patience=60)]
    listing = project.apache(f"cd results 2>/dev/null && [ -d {batch} ] && find {batch} -type f -exec md5sum {{}} + || true")
    outputs = {path: md5 for md5, path in (line.split(None, 1) for line in listing.splitlines() if line.strip())}
    return db.delivery_problems(names, workunits, results, batch, outputs, rec.uploaded, rec.reported,
                                rec.acked, rec.given_twice)


async def drive(n: int, tag: str, scheduler: str, authenticator: str, args, monitor: Monitor, jobs: int,
                rec: Recorder, faults: list[Fault], containers: dict[str, str]) -> float:
    """Run the hosts until every job is assimilated (or the run stalls or times out), doing
    each fault when it is due (one at a time, the next once the last container is back); then
    let hosts report what is not yet acknowledged (--drain seconds at most)."""
    done, draining = asyncio.Event(), asyncio.Event()
    # One HTTP client per host, as each BOINC client has its own connections: one pool shared
    # by all hosts costs httpcore a scan of every waiting request per connection event, which
    # made the generator the bottleneck from about 400 hosts (py-spy: _assign_requests_to_connections).
    limits = httpx.Limits(max_connections=args.ncpus + 1, max_keepalive_connections=2 if args.keepalive else 0)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0)))
                   for _ in range(n)]
        hosts = [SimulatedHost(i, tag, authenticator, args) for i in range(n)]
        tasks = [asyncio.create_task(h.loop(c, scheduler, rec, done, draining)) for h, c in zip(hosts, clients)]
        started = time.monotonic()
        last_change, last = started, -1
        pending, striking = list(faults), None
        while True:
            await asyncio.sleep(0.5)
            count = monitor.samples[-1][1] if monitor.samples else 0
            now = time.monotonic()
            if count != last:
                last, last_change = count, now
            if striking and striking.done():
                striking = None
            elif striking:
                last_change = now  # no stall while the container is not back: that is the outage
            if pending and not striking and pending[0].due(now - started, count, jobs):
                fault = pending.pop(0)
                fault.at_assimilated = count
                print(f"  fault: {fault.kind} at {now - started:.0f} s, {count}/{jobs} assimilated", file=sys.stderr)
                striking = asyncio.create_task(asyncio.to_thread(fault.strike, containers[fault.service],
                                                                  lambda: rec.in_flight > 0))
            if count >= jobs and not pending and not striking:
                break
            if now - last_change > args.stall or now - started > args.timeout:
                print(f"  stopped: {count}/{jobs} assimilated, no progress for {now - last_change:.0f} s",
                      file=sys.stderr)
                break
        if striking:
            await striking
        wall = time.monotonic() - started
        draining.set()
        _, still = await asyncio.wait(tasks, timeout=args.drain)
        if still:
            print(f"  {len(still)} hosts still had reports unacknowledged after {args.drain:.0f} s", file=sys.stderr)
        done.set()
        await asyncio.gather(*tasks)
        return wall


def one_run(project: Project, sql: SqlSession, tmp: Path, n: int, jobs: int, args, master: str, scheduler: str,
            authenticator: str) -> tuple[dict, list[dict]]:
    tag = f"{n}x{time.time_ns() % 10**8}"
    print(f"{n} hosts: submitting {jobs} jobs ...", file=sys.stderr)
    batch, names = submit(project, tmp, jobs, tag)
    containers = containers_of(project)
    monitor = Monitor(sql, batch, containers, args.stats_every)
    cpu_before, procs_before = container_cpu(containers), process_cpu(containers["apache"])
    self_before, children_before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    rec = Recorder()
    rec.capture = args.capture
    faults = plan(args.fault, args.fault_at)
    monitor.start()
    print(f"{n} hosts: running ...", file=sys.stderr)
    accounting = ProcessAccounting(tmp) if args.acct else contextlib.nullcontext()
    started = time.monotonic()
    with accounting:
        wall = asyncio.run(drive(n, tag, scheduler, authenticator, args, monitor, jobs, rec, faults, containers))
    monitor.stop.set()
    monitor.join()
    self_after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after, procs_after = container_cpu(containers), process_cpu(containers["apache"])
    time.sleep(args.settle)
    problems = exactly_once(project, sql, batch, names, rec)
    counts = db.problem_counts(problems)
    generator_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    monitor_cpu = ((children_after.ru_utime + children_after.ru_stime)
                   - (children_before.ru_utime + children_before.ru_stime))
    done = monitor.samples[-1][1] if monitor.samples else 0
    # A restarted container starts its CPU counters again: its figures would be wrong.
    restarted = {f.service for f in faults if f.after}
    apache_by_process = {k: round(procs_after.get(k, 0.0) - procs_before.get(k, 0.0), 1) for k in procs_after
                         if "apache" not in restarted}
    figures = {
        "hosts": n, "jobs": jobs, "batch": batch, "assimilated": done,
        "completed_per_s": round(steady_rate(monitor.samples, jobs), 1),
        "overall_per_s": round(done / wall, 1) if wall else 0.0, "wall_s": round(wall, 1),
        "lost": counts["lost"], "duplicates": counts["duplicate"],
        "rpcs": len(rec.rpc_ms), "jobs_per_rpc_with_work": round(rec.tasks / max(1, rec.rpcs_with_work), 1),
        "rpc_p50_ms": round(percentile(rec.rpc_ms, 50), 1), "rpc_p99_ms": round(percentile(rec.rpc_ms, 99), 1),
        "upload_p50_ms": round(percentile(rec.upload_ms, 50), 1),
        "upload_p99_ms": round(percentile(rec.upload_ms, 99), 1),
        "generator_cpu_share": round(generator_cpu / (wall * (os.cpu_count() or 1)), 3),
        "generator_cpu_s": round(generator_cpu, 1), "monitor_cpu_s": round(monitor_cpu, 1),
        "container_cpu_s": {k: round(cpu_after.get(k, 0.0) - v, 1) for k, v in cpu_before.items() if k not in restarted},
        "apache_cpu_by_process_s": {k: v for k, v in sorted(apache_by_process.items(), key=lambda kv: -kv[1]) if v >= 0.1},
        "peak_memory_mb": {k: round(v) for k, v in monitor.peak_mb.items()},
        "errors": rec.errors, "host_view": rec.host_view(),
    }
    if faults:
        now = time.monotonic()
        ends = [f.at or now for f in faults[1:]] + [now]
        figures["faults"] = [f.figures(started, rec.events, monitor.progress_after(f.at, f.at_assimilated), end)
                             for f, end in zip(faults, ends)]
    if args.acct:
        # Programs that ran and exited during the run, machine-wide, most CPU first.
        exited = sorted(accounting.cpu_by_command().items(), key=lambda kv: -kv[1][1])[:12]
        figures["exited_cpu_s"] = {k: {"processes": n_, "cpu_s": round(c, 1)} for k, (n_, c) in exited}
    return figures, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", "-C", type=Path, help="a running project (default: a throwaway one)")
    parser.add_argument("--hosts", default="20", help="simulated hosts; a list (10,100,1000) gives a curve")
    parser.add_argument("--jobs", default="2000",
                        help="jobs of each run; a list as long as --hosts gives each run its own (300,3000)")
    parser.add_argument("--compute", type=float, default=0.0, help="seconds a host 'computes' a task")
    parser.add_argument("--work-req", type=float, default=60.0, help="work_req_seconds of each RPC")
    parser.add_argument("--ncpus", type=int, default=4, help="p_ncpus of each host")
    parser.add_argument("--output-repeat", type=int, default=1, help="lines of each output (size)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds a host without work waits")
    parser.add_argument("--keepalive", action="store_true", help="keep HTTP connections open between requests")
    parser.add_argument("--timeout", type=float, default=1800, help="longest run, seconds")
    parser.add_argument("--stall", type=float, default=120, help="stop a run after this long without progress")
    parser.add_argument("--stats-every", type=float, default=3.0, help="seconds between docker stats samples")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before the exactly-once check")
    parser.add_argument("--acct", action="store_true",
                        help="count exited processes' CPU (the CGIs) with the kernel's process accounting (root)")
    parser.add_argument("--capture", type=Path, help="keep the first replies of each kind in this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND",
                        help="during each run: kill-apache (kill -9 of the container, as root) or restart-mysql; "
                             "may be given twice")
    parser.add_argument("--fault-at", action="append", default=[], metavar="WHEN",
                        help="when each --fault comes: seconds after the hosts start (15) or a share of the jobs "
                             "assimilated (30%%); default 30%%, then 60%%")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="a host's wait after its first failure, doubled for each next one (the client's: 60 s)")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="a host's longest wait after failures")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds hosts may take to report what is unacknowledged once all jobs are done")
    args = parser.parse_args()
    curve = [int(x) for x in args.hosts.split(",")]
    jobs = [int(x) for x in args.jobs.split(",")]
    if len(jobs) == 1:
        jobs *= len(curve)
    if len(jobs) != len(curve):
        parser.error(f"--jobs has {len(jobs)} values and --hosts {len(curve)}: give one, or one per run")
    try:
        plan(args.fault, args.fault_at)
    except ValueError as exc:
        parser.error(str(exc))

    runs, failed = [], []
    with measured_project("tp", args.project_dir) as (folder, tmp):
        project = Project(folder)
        sql = None
        try:
            master = loopback_only(f"{project.url_base.rstrip('/')}/{project.name}/")
            schedulers = p.scheduler_urls(httpx.get(master, timeout=60).text)
            if not schedulers:
                sys.exit(f"the master page {master} names no scheduler")
            scheduler = loopback_only(schedulers[0])
            authenticator = create_account(master, str(os.getpid()))
            sql = SqlSession(project)
            for n, m in zip(curve, jobs):
                figures, problems = one_run(project, sql, tmp, n, m, args, master, scheduler, authenticator)
                runs.append(figures)
                failed += [dict(pr, hosts=n) for pr in problems]
        finally:
            if sql:
                sql.close()
    if args.json:
        print(json.dumps({"runs": runs, "problems": failed[:200]}, indent=2))
    else:
        print_figures(runs, args)
    if failed:
        print(f"\nexactly-once check FAILED: {len(failed)} problems", file=sys.stderr)
        for pr in failed[:50]:
            print(f"  [{pr['hosts']} hosts] {pr['kind']}: {pr['job']}: {pr['what']}", file=sys.stderr)
    # A fault run whose fault did not happen proves nothing.
    missed = [f"{r['hosts']} hosts: {f['kind']}: {f['error'] or 'not done'}" for r in runs for f in r.get("faults", [])
              if f["error"] or not f["started_at_after"]]
    for line in missed:
        print(f"fault FAILED: {line}", file=sys.stderr)
    return 1 if failed or missed else 0


def print_figures(runs: list[dict], args) -> None:
    print(f"task throughput: one replica each, compute {args.compute} s a task, {os.cpu_count()} cores "
          "(paper: 8.8 M/day = 102 jobs/s on one server); jobs/s in steady state, M/day the same a day")
    print(f"  {'hosts':>6} {'jobs':>6} {'jobs/s':>8} {'M/day':>6} {'overall':>8} {'lost':>5} {'dup':>4} {'rpc p50':>8} "
          f"{'rpc p99':>8} {'up p99':>7} {'jobs/rpc':>8} {'gen cpu':>8}")
    for r in runs:
        print(f"  {r['hosts']:>6} {r['jobs']:>6} {r['completed_per_s']:>8} {r['completed_per_s'] * 86400 / 1e6:>6.2f} "
              f"{r['overall_per_s']:>8} {r['lost']:>5} "
              f"{r['duplicates']:>4} {r['rpc_p50_ms']:>6}ms {r['rpc_p99_ms']:>6}ms {r['upload_p99_ms']:>5}ms "
              f"{r['jobs_per_rpc_with_work']:>8} {r['generator_cpu_share'] * 100:>7.1f}%")
    for r in runs:
        print(f"  {r['hosts']} hosts: CPU s by container {r['container_cpu_s']}, generator {r['generator_cpu_s']} s, "
              f"monitoring {r['monitor_cpu_s']} s; peak MB {r['peak_memory_mb']}")
        print(f"    apache CPU s by process: {r['apache_cpu_by_process_s']}")
        if "exited_cpu_s" in r:
            print("    exited processes (process accounting): "
                  + ", ".join(f"{k} {v['processes']}x {v['cpu_s']} s" for k, v in r["exited_cpu_s"].items()))
        if r["errors"]:
            print(f"    errors seen by hosts: {r['errors']}; {r['host_view']}")
        for f in r.get("faults", []):
            print(f"    {f['kind']} at {f['at_s']} s ({f['at_assimilated']} assimilated), seconds after it until: "
                  f"container back {f['container_back_s']}, a good RPC {f['first_good_rpc_s']}, work "
                  f"{f['first_work_s']} (then at most {f['longest_work_gap_s']} s without), a job assimilated "
                  f"{f['first_assimilated_s']}; hosts saw {f['host_errors']} "
                  f"errors, longest outage {f['longest_host_outage_s']} s {f['error']}")


if __name__ == "__main__":
    sys.exit(main())
