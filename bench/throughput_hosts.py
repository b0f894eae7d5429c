"""The simulated hosts of bench/throughput.py: BOINC clients as far as the server can tell
(scheduler requests, uploads, reports; what they do on errors), and what they saw.

Facts from BOINC's client (8.2.15: client/scheduler_op.cpp, client/cs_scheduler.cpp,
client/file_xfer.cpp, client/pers_file_xfer.cpp, client/client_state.cpp) and the pinned
scheduler (sched/sched_result.cpp, sched/sched_resend.cpp):
- after a failed scheduler request (no connection, an HTTP error, a reply it cannot parse, a
  reply saying the project is down) the client waits 2^n x 60 s (n failures in a row, at most
  4 hours), times a random 0.5 to 1, and sends its request again; results the scheduler did not
  acknowledge are in it again. A result reported twice is acknowledged and not counted again
  ("already reported as success"), and the scheduler then resends the tasks of a reply the
  host never got (those in progress for it but missing from the request's <other_results>,
  which leaves out the results being reported; a project with <resend_lost_results> does so
  at every request for work). A task sent again that the client already has is kept as it is
  (cs_scheduler.cpp: "Already have task", or its new deadline), not run twice;
- rpc_seqno goes up with every request sent, answered or not;
- a failed upload is retried with the same backoff (at least 2 minutes); a file under 8 KB is
  sent whole again, a bigger one from the size the handler reports (<get_file_size>). The
  handler writes from the offset it is sent, so a second whole upload overwrites the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from boincserver.boinc import protocol as p


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        sys.exit(f"refusing to send load to {url}: only loopback addresses are load-tested")
    return url


class Recorder:
    """What the hosts saw: latencies, what they were given, reported and had acknowledged,
    and their failures: errors by kind, retries, outages (first failure to the next success)."""

    def __init__(self):
        self.rpc_ms: list[float] = []
        self.upload_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        # Monotonic times of good scheduler replies, replies with work and errors; (start, end)
        # of each host's outages.
        self.events: dict[str, list] = {"rpc_ok": [], "work": [], "error": [], "outages": []}
        self.given: set[str] = set()
        self.given_twice: set[str] = set()
        self.reported: set[str] = set()
        self.acked: set[str] = set()
        self.uploaded: dict[str, dict[str, str]] = {}
        self.tasks = 0
        self.rpcs_with_work = 0
        self.in_flight = 0  # requests sent and not yet answered
        self.capture: Path | None = None

    def keep(self, name: str, body: bytes) -> None:
        """The first reply of a kind, as a test fixture (--capture)."""
        if self.capture and not (self.capture / name).exists():
            self.capture.mkdir(parents=True, exist_ok=True)
            (self.capture / name).write_bytes(body)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
        self.events["error"].append(time.monotonic())

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def host_view(self) -> dict:
        outages = [end - start for start, end in self.events["outages"]]
        return {"errors": sum(self.errors.values()), "longest_outage_s": round(max(outages, default=0.0), 1),
                "outages": len(outages), **{k: self.counts[k] for k in sorted(self.counts)}}


def backoff(failures: int, low: float, high: float) -> float:
    """How long a host waits after its n-th failure in a row: the client's
    calculate_exponential_backoff, 2^n x low at most high, times a random 0.5 to 1. The
    client's low is 60 s for scheduler requests (SCHED_RETRY_DELAY_MIN) and its high 4 hours;
    the bench's are --backoff and --backoff-max."""
    return min(high, low * 2 ** failures) * random.uniform(0.5, 1.0)


class SimulatedHost:
    """One BOINC client: a scheduler request, its tasks computed and uploaded, reported in the
    next request. On a failure (no connection, HTTP error, a reply that is not one, the
    project down) it backs off and tries again: the same report until the scheduler
    acknowledges it, the same upload until the handler says done (whole: the client resumes
    only files of 8 KB or more, FILE_SIZE_CHECK_THRESHOLD; our outputs are smaller)."""

    def __init__(self, i: int, tag: str, authenticator: str, args):
        self.host = p.Host(host_cpid=p.host_cpid(f"{tag}-{i}"), domain_name=f"sim-{tag}-{i}",
                           p_ncpus=args.ncpus)
        self.authenticator = authenticator
        self.hostid = 0
        self.seqno = 0
        self.finished: dict[str, p.FinishedTask] = {}
        self.times_reported: dict[str, int] = {}
        self.holding: set[str] = set()  # tasks given and not finished: the request's <other_results>
        self.rpc_failures = 0
        self.failing_since: float | None = None
        self.args = args
        self.cpus = asyncio.Semaphore(args.ncpus)
        self.transfers = asyncio.Semaphore(2)

    def failed(self, rec: Recorder, what: str) -> None:
        rec.error(what)
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def succeeded(self, rec: Recorder) -> None:
        if self.failing_since is not None:
            rec.events["outages"].append((self.failing_since, time.monotonic()))
            self.failing_since = None

    async def post(self, client: httpx.AsyncClient, url: str, body: bytes, times: list[float],
                   rec: Recorder, what: str) -> bytes | None:
        started = time.perf_counter()
        rec.in_flight += 1
        try:
            r = await client.post(url, content=body, headers={"Content-Type": "text/xml"})
        except httpx.HTTPError as exc:
            self.failed(rec, f"{what}: {type(exc).__name__}")
            return None
        finally:
            rec.in_flight -= 1
        if r.status_code != 200:
            self.failed(rec, f"{what}: HTTP {r.status_code}")
            return None
        times.append((time.perf_counter() - started) * 1000)
        return r.content

    async def rpc(self, client, scheduler: str, body: bytes, rec: Recorder) -> p.SchedulerReply | None:
        """One scheduler request; None (a failure, recorded) unless a reply of a running project."""
        answer = await self.post(client, scheduler, body, rec.rpc_ms, rec, "scheduler")
        self.seqno += 1  # the client counts requests sent, answered or not (scheduler_op.cpp)
        if answer is None:
            return None
        try:
            reply = p.parse_scheduler_reply(answer)
        except p.ProtocolError:
            self.failed(rec, "scheduler: not a reply")
            return None
        if reply.project_is_down:
            # A real client waits the reply's request_delay (config.xml's maintenance_delay,
            # an hour by default); the bench backs off as for any failure.
            self.failed(rec, f"scheduler: project down ({'; '.join(reply.messages)[:60]})")
            return None
        if reply.account_key_refused and not reply.tasks:
            # MariaDB lost during the user lookup reads as a wrong key: a real client waits the
            # reply's hour (DELAY_MISSING_KEY) and tells its volunteer to re-attach; the bench's
            # keys are right, so it backs off as for any failure, and counts it.
            self.failed(rec, "scheduler: account key refused")
            return None
        self.succeeded(rec)
        rec.events["rpc_ok"].append(time.monotonic())
        if reply.tasks:
            rec.keep("scheduler_reply_work.xml", answer)
            rec.events["work"].append(time.monotonic())
        if reply.acked:
            rec.keep("scheduler_reply_report.xml", answer)
        return reply

    async def upload(self, client, task: p.Task, reply: p.SchedulerReply, rec: Recorder,
                     done: asyncio.Event) -> p.FinishedTask | None:
        outputs, sums = [], {}
        for name, open_name in zip(task.outputs, task.open_names or task.outputs):
            spec = reply.uploads.get(name)
            if spec is None:
                rec.error("reply: output without an upload URL")
                return None
            # What uc2 would write: its input in upper case; here the job's name, so each differs.
            data = (f"{task.wu_name} {open_name}\n".upper() * self.args.output_repeat).encode()
            failures = 0
            while not done.is_set():
                body = await self.post(client, loopback_only(spec.upload_urls[0]), p.upload_request(spec, data),
                                       rec.upload_ms, rec, "upload")
                try:
                    answer = p.parse_upload_reply(body) if body else None
                except p.ProtocolError:
                    self.failed(rec, "upload: not a reply")
                    answer = None
                if answer and answer.ok:
                    self.succeeded(rec)
                    rec.keep("upload_reply.xml", body)
                    break
                if answer and not answer.transient:
                    rec.error(f"upload refused: {answer.message}")
                    return None
                if answer:
                    self.failed(rec, "upload: transient error")
                failures += 1
                rec.count("upload_retries")
                await self.idle(done, backoff(failures, self.args.backoff, self.args.backoff_max))
            else:
                return None
            md5 = hashlib.md5(data).hexdigest()
            outputs.append(p.OutputFile(name, len(data), spec.max_nbytes, md5))
            sums[open_name] = md5
        rec.uploaded[task.name] = sums
        return p.FinishedTask(task.name, tuple(outputs), cpu_time=self.args.compute,
                              elapsed_time=self.args.compute, version_num=task.version_num,
                              platform=task.platform or p.PLATFORM)

    async def loop(self, client, scheduler: str, rec: Recorder, done: asyncio.Event,
                   draining: asyncio.Event) -> None:
        """Until the run is done; once it drains (every job assimilated), only until what
        this host finished is acknowledged, asking for no more work."""
        while not done.is_set() and not (draining.is_set() and not self.finished):
            finished = list(self.finished.values())
            work_req = 0.0 if draining.is_set() else self.args.work_req
            body = p.scheduler_request(self.authenticator, self.host, self.hostid, self.seqno,
                                       work_req_seconds=work_req, cpu_req_instances=self.host.p_ncpus if work_req else 0,
                                       finished=finished, in_progress=sorted(self.holding))
            for task in finished:
                self.times_reported[task.name] = self.times_reported.get(task.name, 0) + 1
                if self.times_reported[task.name] > 1:
                    rec.count("reports_resent")
            sent = time.monotonic()
            reply = await self.rpc(client, scheduler, body, rec)
            if reply is None:
                self.rpc_failures += 1
                rec.count("rpc_retries")
                await self.idle(done, backoff(self.rpc_failures, self.args.backoff, self.args.backoff_max))
                continue
            self.rpc_failures = 0
            if reply.hostid:
                self.hostid = reply.hostid
            rec.reported.update(t.name for t in finished)
            for name in reply.acked:
                rec.acked.add(name)
                self.finished.pop(name, None)
            # A task the host already has (the scheduler's resend of lost results, when a
            # report of it was not stored) is kept as it is, as the client does
            # (client/cs_scheduler.cpp: "Already have task", or a new deadline).
            tasks = [t for t in reply.tasks if t.name not in self.holding and t.name not in self.finished]
            if len(tasks) < len(reply.tasks):
                rec.count("tasks_already_held", len(reply.tasks) - len(tasks))
            if tasks:
                rec.rpcs_with_work += 1
            for task in tasks:
                rec.tasks += 1
                (rec.given_twice if task.name in rec.given else rec.given).add(task.name)
                self.holding.add(task.name)
            # Tasks run p_ncpus at a time and upload two files at a time (the client's
            # default max_file_xfers_per_project); all are reported in the next RPC.
            results = await asyncio.gather(*(self.run_task(client, t, reply, rec, done) for t in tasks))
            for task, result in zip(tasks, results):
                if result:
                    self.finished[result.name] = result
                    self.holding.discard(task.name)
            if not tasks and not self.finished:
                # Nothing to do: ask again later (a real client backs off far longer).
                await self.idle(done, max(self.args.idle, min(reply.request_delay, 10.0)), jitter=True)
            elif reply.request_delay:
                # The client's min_rpc_time: no RPC before request_delay has passed, not even
                # to report (config.xml's min_sendwork_interval sets it).
                await self.idle(done, reply.request_delay - (time.monotonic() - sent))

    async def run_task(self, client, task: p.Task, reply: p.SchedulerReply, rec: Recorder,
                       done: asyncio.Event) -> p.FinishedTask | None:
        if self.args.compute:
            async with self.cpus:
                await asyncio.sleep(self.args.compute)
        async with self.transfers:
            return await self.upload(client, task, reply, rec, done)

    async def idle(self, done: asyncio.Event, seconds: float, jitter: bool = False) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(done.wait(), seconds * (random.uniform(1.0, 1.5) if jitter else 1.0))
        except asyncio.TimeoutError:
            pass


def create_account(master: str, tag: str) -> str:
    r = httpx.get(master + p.CREATE_ACCOUNT_PAGE, timeout=60,
                  params=p.create_account_params(f"bench-{tag}@example.org", f"pw-{tag}", f"bench {tag}"))
    auth = p.account_authenticator(r.text)
    if not auth:
        sys.exit(f"create_account failed: {r.text[:300]}")
    return auth
