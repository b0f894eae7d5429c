#!/usr/bin/env python3
"""Job submission benchmark: `boincserver submit` against one exec per job and the ceiling.

Makes a throwaway project on a free port (or uses a running one with --project-dir), installs
the uppercase example app, and times, side by side in one run:

- boincserver: `boincserver submit uppercase --jobs FILE` of N jobs (default 10,000), each
  with its own 1 KB input file, from the command's start to its end (the rows are in the
  database when it returns; checked);
- (a) one `docker compose exec apache bin/create_work` per job, the way users of other Docker
  BOINC servers do it (200 jobs, inputs already staged);
- (b) the ceiling: one `create_work --stdin` run inside the container over N inputs already
  staged there, timed inside the container;

- remote: `boincserver submit uppercase --jobs FILE --remote URL --authenticator-file F` of
  N other jobs (--remote-jobs), as a submitter made with `user add`: over HTTP only, through
  BOINC's job_file.php and submit_rpc_handler.php (issue 12);

then the peak RSS of the boincserver process for N and for --big jobs (default 100,000). The
BOINC daemons are stopped while it measures (creating jobs needs none of them, and the
transitioner working through earlier jobs would skew later figures), started again after.
Targets: >= 1,000 jobs/s end to end, >= 75x (a), >= 75% of (b) (issue 11).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boincserver.boinc import jobs as bj  # noqa: E402

CLI = [sys.executable, "-m", "boincserver"]
# Runs the CLI in this process' child and reports its own peak RSS (not docker's) at exit:
# VmHWM, the high-water mark of its own memory. Not getrusage's ru_maxrss: Linux carries the
# peak of the memory replaced by exec into it, and Python starts children by vfork, so that
# was this bench's own peak (the ceiling's staging tar: 220 MB "at 100,000 jobs").
RSS_RUNNER = ("import atexit, sys\n"
              "def peak():\n"
              "    with open('/proc/self/status') as f:\n"
              "        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))\n"
              "    sys.stderr.write('\\nPEAK_RSS_KB %d\\n' % kb)\n"
              "atexit.register(peak)\n"
              "sys.argv = ['boincserver'] + sys.argv[1:]\n"
              "from boincserver.commands.cli import main\nmain()\n")


def run(cmd: list[str], cwd: Path | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, input=input)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout.decode()[-2000:]}\n{done.stderr.decode()[-2000:]}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def measured_project(prefix: str, project_dir: Path | None):
    """(folder, scratch): the project to measure, with the uppercase example app, and a scratch
    folder. The project is the one given, or a throwaway one on a free port, deleted with its
    volumes afterwards (bench/jobs.py and bench/throughput.py measure on either)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"boincserver-bench-{prefix}-"))
    own = project_dir is None
    folder = tmp / f"{prefix}{os.getpid()}" if own else project_dir.absolute()
    try:
        if own:
            port = free_port()
            run(CLI + ["init", str(folder), "--url-base", f"http://127.0.0.1:{port}", "--http-port", str(port)])
            print(f"starting a throwaway project on port {port} ...", file=sys.stderr)
            run(CLI + ["up"], folder)
        apps = json.loads(run(CLI + ["app", "list", "--json"], folder).stdout)
        if "uppercase" not in {a["name"] for a in apps}:
            run(CLI + ["app", "add", "uppercase", "--example", "uppercase"], folder)
        yield folder, tmp
    finally:
        if own:
            subprocess.run(CLI + ["down", "--volumes", "--yes"], cwd=folder, capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])


class Project:
    def __init__(self, folder: Path):
        self.dir = folder
        settings = {}
        for line in (folder / ".env").read_text().splitlines():
            k, _, v = line.partition("=")
            settings[k.strip()] = v.strip().strip('"')
        self.name, self.user, self.root = settings["PROJECT"], settings["BOINC_USER"], settings["PROJECT_ROOT"]
        self.url_base = settings.get("URL_BASE", "")

    def apache(self, script: str, input: bytes | None = None) -> str:
        cmd = ["docker", "compose", "exec", "-T", "--user", self.user, "--workdir", self.root, "apache",
               "sh", "-c", script]
        return run(cmd, self.dir, input).stdout.decode()

    def sql(self, statement: str) -> str:
        return run(["docker", "compose", "exec", "-T", "mysql", "mariadb", "-N", "-B", self.name, "-e", statement],
                   self.dir).stdout.decode().strip()

    def workunits(self) -> int:
        return int(self.sql("SELECT COUNT(*) FROM workunit"))


def make_inputs(folder: Path, n: int, tag: str) -> Path:
    """n files of 1 KB, each its own content, and a jobs file naming them."""
    folder.mkdir(parents=True)
    with open(folder / "jobs.txt", "w") as jobs:
        jobs.write(f"# {tag}\n")  # job names follow the file's content: new ones each run
        for i in range(n):
            head = f"{tag} job {i}\n".encode()
            (folder / f"{i}.txt").write_bytes(head + b"x" * (1023 - len(head)) + b"\n")
            jobs.write(f"{i}.txt\n")
    return folder / "jobs.txt"


def stage_in_container(project: Project, n: int, tag: str) -> list[str]:
    """n new 1 KB inputs put straight into the download hierarchy (one tar); their names."""
    names = []
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for i in range(n):
                head = f"{tag} job {i}\n".encode()
                data = head + b"y" * (1023 - len(head)) + b"\n"
                name = bj.staged_name(hashlib.md5(data).hexdigest())
                info = tarfile.TarInfo("download/" + bj.dir_hier_path(name))
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                names.append(name)
        buf.seek(0)
        project.apache("tar -x -f - --no-same-owner", buf.read())
    return names


def boincserver_submit(project: Project, jobs: Path, dry_run: bool = False,
                       remote: list[str] | None = None) -> tuple[float, int, dict]:
    cmd = [sys.executable, "-c", RSS_RUNNER, "-C", str(project.dir) if project else ".", "submit", "uppercase",
           "--jobs", str(jobs), "--json"] + (["--dry-run"] if dry_run else []) + (remote or [])
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"boincserver submit failed:\n{done.stdout}\n{done.stderr}")
    rss = int(done.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return seconds, rss, json.loads(done.stdout)


def submitter(project: Project, folder: Path) -> list[str]:
    """A submitter of uppercase made with `user add`: the options of a remote submission as it."""
    made = json.loads(run(CLI + ["user", "add", f"bench{time.time_ns()}@example.org", "--submit", "uppercase",
                                 "--json"], project.dir).stdout)
    key = folder / "authenticator"
    key.write_text(made["authenticator"] + "\n")
    key.chmod(0o600)
    return ["--remote", f"{project.url_base}/{project.name}/", "--authenticator-file", str(key)]


def one_exec_per_job(project: Project, n: int) -> float:
    names = stage_in_container(project, n, f"a{time.time_ns()}")
    base = ["docker", "compose", "exec", "-T", "--user", project.user, "--workdir", project.root, "apache"]
    started = time.monotonic()
    for i, name in enumerate(names):
        run(base + ["bin/create_work", "--appname", "uppercase", "--wu_name", f"bench_a_{time.time_ns()}_{i}", name],
            project.dir)
    return n / (time.monotonic() - started)


def ceiling(project: Project, n: int) -> float:
    tag = f"b{time.time_ns()}"
    names = stage_in_container(project, n, tag)
    lines = "".join(f"--wu_name bench_{tag}_{i} {name}\n" for i, name in enumerate(names)).encode()
    out = project.apache("cat > tmp_boincserver/bench-lines && s=$(date +%s.%N) && "
                         "bin/create_work --appname uppercase --stdin < tmp_boincserver/bench-lines && "
                         "e=$(date +%s.%N) && rm tmp_boincserver/bench-lines && echo $s $e", lines)
    start, end = map(float, out.split()[-2:])
    return n / (end - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", "-C", type=Path, help="a running project (default: a throwaway one)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the main measurement")
    parser.add_argument("--per-exec", type=int, default=200, help="jobs timed one exec each (a)")
    parser.add_argument("--remote-jobs", type=int, default=10_000,
                        help="jobs submitted remotely, over HTTP as a submitter (0: skip)")
    parser.add_argument("--big", type=int, default=100_000, help="jobs of the peak-RSS measurement (0: skip)")
    parser.add_argument("--big-dry-run", action="store_true",
                        help="measure --big with `submit --dry-run` (parse, check and pack; nothing sent)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    figures: dict = {}
    with measured_project("bj", args.project_dir) as (folder, tmp):
        project = Project(folder)
        try:
            project.apache("bin/stop")
            print(f"writing {args.jobs} input files ...", file=sys.stderr)
            jobs = make_inputs(tmp / "main", args.jobs, f"m{time.time_ns()}")

            print("(a) one docker compose exec per create_work ...", file=sys.stderr)
            figures["per_exec_jobs_per_s"] = one_exec_per_job(project, args.per_exec)
            print("(b) one create_work --stdin in the container ...", file=sys.stderr)
            figures["ceiling_jobs_per_s"] = ceiling(project, args.jobs)

            print(f"boincserver submit of {args.jobs} jobs ...", file=sys.stderr)
            before = project.workunits()
            seconds, rss, result = boincserver_submit(project, jobs)
            assert project.workunits() - before == args.jobs == result["created"], "rows missing"
            figures["boincserver_jobs_per_s"] = args.jobs / seconds
            figures["boincserver_seconds"] = seconds
            figures[f"peak_rss_mb_{args.jobs}"] = rss / 1024
            if args.remote_jobs:
                print(f"writing {args.remote_jobs} input files ...", file=sys.stderr)
                far = make_inputs(tmp / "remote", args.remote_jobs, f"r{time.time_ns()}")
                print(f"boincserver submit --remote of {args.remote_jobs} jobs ...", file=sys.stderr)
                before = project.workunits()
                seconds, rss, result = boincserver_submit(project, far, remote=submitter(project, tmp))
                assert project.workunits() - before == args.remote_jobs == result["created"], "rows missing"
                figures["remote_jobs_per_s"] = args.remote_jobs / seconds
                figures["remote_seconds"] = seconds
                figures["remote_peak_rss_mb"] = rss / 1024
                figures["remote_of_local"] = figures["remote_jobs_per_s"] / figures["boincserver_jobs_per_s"]
            if args.big:
                print(f"writing {args.big} input files ...", file=sys.stderr)
                big = make_inputs(tmp / "big", args.big, f"g{time.time_ns()}")
                print(f"boincserver submit of {args.big} jobs{' (dry run)' if args.big_dry_run else ''} ...",
                      file=sys.stderr)
                before = project.workunits() if not args.big_dry_run else 0
                seconds, rss, result = boincserver_submit(project, big, dry_run=args.big_dry_run)
                if not args.big_dry_run:
                    assert project.workunits() - before == args.big, "rows missing"
                figures[f"peak_rss_mb_{args.big}"] = rss / 1024
                figures[f"boincserver_jobs_per_s_{args.big}"] = args.big / seconds
                figures["big_dry_run"] = args.big_dry_run
        finally:
            try:
                project.apache("bin/start")
            except SystemExit:
                pass
    figures["vs_per_exec"] = figures["boincserver_jobs_per_s"] / figures["per_exec_jobs_per_s"]
    figures["of_ceiling"] = figures["boincserver_jobs_per_s"] / figures["ceiling_jobs_per_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    n = args.jobs
    print("jobs of 1 KB input each; jobs/s from the command's start to the rows in the database")
    print(f"  boincserver submit ({n} jobs)            {figures['boincserver_jobs_per_s']:9.0f} jobs/s"
          f"  ({figures['boincserver_seconds']:.1f} s)")
    print(f"  (a) one compose exec per create_work ({args.per_exec}) {figures['per_exec_jobs_per_s']:9.1f} jobs/s")
    print(f"  (b) create_work --stdin in the container {figures['ceiling_jobs_per_s']:9.0f} jobs/s  (ceiling)")
    print(f"  boincserver / (a)                         {figures['vs_per_exec']:9.0f} x   (target >= 75 x)")
    print(f"  boincserver / (b)                         {figures['of_ceiling'] * 100:9.0f} %   (target >= 75 %)")
    print(f"  peak RSS of boincserver, {n} jobs        {figures[f'peak_rss_mb_{n}']:9.1f} MB")
    if args.remote_jobs:
        print(f"  submit --remote ({args.remote_jobs} jobs)         {figures['remote_jobs_per_s']:9.0f} jobs/s"
              f"  ({figures['remote_seconds']:.1f} s; {figures['remote_of_local'] * 100:.0f} % of local;"
              f" peak RSS {figures['remote_peak_rss_mb']:.1f} MB)")
    if args.big:
        how = "dry run: parse, check, pack" if args.big_dry_run else "submitted"
        print(f"  peak RSS of boincserver, {args.big} jobs      {figures[f'peak_rss_mb_{args.big}']:9.1f} MB"
              f"  ({how}; {figures[f'boincserver_jobs_per_s_{args.big}']:.0f} jobs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
