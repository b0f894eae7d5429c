"""What bench/throughput.py measures besides the hosts: the database's assimilated count
over time (through one mariadb session), the containers' CPU and peak memory, CPU by process
in the apache container, and (with --acct) the CPU of each program that exited during the run,
the CGIs among them, from the kernel's process accounting.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

from boincserver.boinc import database as db
from jobs import Project, run

def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def steady_rate(samples: list[tuple[float, int]], total: int, low: float = 0.1, high: float = 0.9) -> float:
    """Jobs per second between the first sample at `low` of the total and the first at `high`
    (or the last sample, if the run never got there): the ramp-up of the first RPCs and the
    tail of the last hosts stay out."""
    start = next(((t, c) for t, c in samples if c >= low * total), None)
    end = next(((t, c) for t, c in samples if c >= high * total), samples[-1] if samples else None)
    if start is None or end is None or end[0] <= start[0]:
        return 0.0
    return (end[1] - start[1]) / (end[0] - start[0])



class SqlSession:
    """One mariadb client in the mysql container, fed statements through its stdin. When it
    ends (MariaDB or its container restarted), the next statement starts a new one."""

    END = "__end_of_answer__"

    def __init__(self, project: Project):
        self.project = project
        self.lock = threading.Lock()
        self.proc = self.open()

    def open(self) -> subprocess.Popen:
        return subprocess.Popen(["docker", "compose", "exec", "-T", "mysql", "mariadb", "-N", "-B", "-n",
                                 self.project.name], cwd=self.project.dir, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def rows(self, statement: str, args: tuple = (), patience: float = 0.0) -> list[list[str]]:
        """The statement's rows; tried again each second for `patience` seconds if MariaDB is away."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self.ask(statement % tuple(int(a) for a in args))  # only ids: no quoting needed
            except RuntimeError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1)

    def ask(self, sql: str) -> list[list[str]]:
        with self.lock:
            if self.proc.poll() is not None:
                self.proc = self.open()
            try:
                self.proc.stdin.write(f"{sql};\nSELECT '{self.END}';\n")
                self.proc.stdin.flush()
                out = []
                for line in self.proc.stdout:
                    if line.rstrip("\n") == self.END:
                        return out
                    out.append(line.rstrip("\n").split("\t"))
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("the mariadb session ended")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.wait(timeout=30)




class Monitor(threading.Thread):
    """Samples the batch's assimilated count each second, the containers' memory each few."""

    def __init__(self, sql: SqlSession, batch: int, containers: dict[str, str], stats_every: float):
        super().__init__(daemon=True)
        self.sql, self.batch, self.containers, self.stats_every = sql, batch, containers, stats_every
        self.samples: list[tuple[float, int]] = []
        self.peak_mb: dict[str, float] = {}
        self.stop = threading.Event()

    def assimilated(self) -> int:
        return int(self.sql.rows(db.BATCH_ASSIMILATED, (self.batch,))[0][0])

    def sample_memory(self) -> None:
        out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.ID}}\t{{.MemUsage}}",
                              *self.containers.values()], capture_output=True, text=True).stdout
        names = {cid[:12]: name for name, cid in self.containers.items()}
        for line in out.splitlines():
            cid, _, usage = line.partition("\t")
            mb = to_mb(usage.split("/")[0].strip())
            name = names.get(cid[:12], cid)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), mb)

    def progress_after(self, when: float, count: int) -> float | None:
        """The time of the first sample after `when` with more than `count` jobs assimilated."""
        return next((t for t, c in self.samples if t > when and c > count), None)

    def run(self) -> None:
        next_stats = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                self.samples.append((now, self.assimilated()))
            except RuntimeError:
                pass  # MariaDB is away (a fault): no sample this second
            if now >= next_stats:
                self.sample_memory()
                next_stats = time.monotonic() + self.stats_every
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - now)))


def to_mb(text: str) -> float:
    units = {"B": 1e-6, "KiB": 1024 / 1e6, "MiB": 2**20 / 1e6, "GiB": 2**30 / 1e6, "kB": 1e-3, "MB": 1, "GB": 1e3}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * units[unit]
    return 0.0


def container_cpu(containers: dict[str, str]) -> dict[str, float]:
    """CPU seconds each container has used (cgroup v2's cpu.stat, else v1's cpuacct.usage)."""
    out = {}
    for name, cid in containers.items():
        text = subprocess.run(["docker", "exec", cid, "sh", "-c",
                               "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage"],
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            if line.startswith("usage_usec"):
                out[name] = int(line.split()[1]) / 1e6
            elif line.strip().isdigit():
                out[name] = int(line) / 1e9
    return out


def process_cpu(cid: str) -> dict[str, float]:
    """CPU seconds by program name in a container, its live processes' own and their reaped
    children's (the CGIs Apache ran are its workers' children)."""
    text = subprocess.run(["docker", "exec", cid, "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
                          capture_output=True, text=True).stdout
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for line in text.splitlines():
        comm = line[line.find("(") + 1:line.rfind(")")]
        fields = line[line.rfind(")") + 2:].split()
        own, children = (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks
        out[comm] = out.get(comm, 0.0) + own
        if children:
            out[comm + " children"] = out.get(comm + " children", 0.0) + children
    return out


def containers_of(project: Project) -> dict[str, str]:
    out = run(["docker", "compose", "ps", "--format", "{{.Service}}\t{{.ID}}"], project.dir).stdout.decode()
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)




class ProcessAccounting:
    """The kernel's BSD process accounting (acct(2), version 3 records) into a file for the
    run: one record per process that exits, with its command name and CPU time, so the
    scheduler's and file_upload_handler's CGIs (one process per request) are counted apart.
    Machine-wide while on, so only with --acct, as root; off again at the end."""

    RECORD = struct.Struct("<BBHIIIIIIfHHHHHHHH16s")  # struct acct_v3, 64 bytes
    TICKS = 100  # AHZ of version 3 records

    def __init__(self, folder: Path):
        self.path = folder / "pacct"
        self.libc = ctypes.CDLL(None, use_errno=True)

    def __enter__(self) -> "ProcessAccounting":
        self.path.write_bytes(b"")
        if self.libc.acct(str(self.path).encode()) != 0:
            raise OSError(ctypes.get_errno(), f"acct({self.path}) failed: process accounting needs root")
        return self

    def __exit__(self, *exc) -> None:
        self.libc.acct(None)

    @staticmethod
    def comp_t(value: int) -> int:
        """comp_t: 13 bits of mantissa, 3 of base-8 exponent."""
        return (value & 0x1FFF) << (3 * (value >> 13))

    def cpu_by_command(self) -> dict[str, tuple[int, float]]:
        """(processes, CPU seconds) by command name."""
        data = self.path.read_bytes()
        out: dict[str, tuple[int, float]] = {}
        for i in range(0, len(data) - self.RECORD.size + 1, self.RECORD.size):
            fields = self.RECORD.unpack_from(data, i)
            if fields[1] & 0x0F != 3:
                continue
            utime, stime = self.comp_t(fields[10]), self.comp_t(fields[11])
            comm = fields[18].split(b"\0", 1)[0].decode("ascii", "replace")
            n, cpu = out.get(comm, (0, 0.0))
            out[comm] = (n + 1, cpu + (utime + stime) / self.TICKS)
        return out
