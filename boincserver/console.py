"""What the CLI prints: steps, the lines of long work, results and errors."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import typer

# The header line of one step of a build: the classic builder's "Step 3/12 : RUN ..." and
# BuildKit's plain "#7 [2/9] RUN ..." (or "#7 [stage 2/9] RUN ..."); everything else is detail.
KEEP_LOGS = 20  # build logs kept, this run's included
BUILD_STEP = re.compile(r"^(?:Step (\d+)/(\d+) : |#\d+ \[(?:\S+ )?(\d+)/(\d+)\] )(.*)$")


class Console:
    """A Reporter for the core: steps always, the lines of builds unless quiet."""

    def __init__(self, quiet: bool = False, log_dir: Path | None = None):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.log_dir = log_dir
        self.log_path: Path | None = None  # the full log of this run's builds, once there is one
        self._log = None

    def start(self, quiet: bool) -> None:
        """A new command: its own build log, if it builds."""
        self.quiet = quiet
        if self._log is not None:
            self._log.close()
        self.log_path, self._log = None, None

    def build_line(self, text: str) -> None:
        """A line of a Docker build: into the build log; on screen only a step's header, as
        "    step 3/12: RUN ...", one line per step (none when quiet)."""
        if self._log is None:
            from boincserver import paths
            folder = self.log_dir or paths.log_dir()
            folder.mkdir(parents=True, exist_ok=True)
            for old in sorted(folder.glob("build-*.log"))[:-(KEEP_LOGS - 1)]:  # the newest are kept
                old.unlink(missing_ok=True)
            self.log_path = folder / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            self._log = self.log_path.open("a", buffering=1)
        self._log.write(text + "\n")
        m = BUILD_STEP.match(text.strip())
        if m and not self.quiet:
            n, total = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            detail = " ".join(m.group(5).split())
            typer.secho(f"    step {n}/{total}: {detail[:100]}" + ("..." if len(detail) > 100 else ""),
                        err=True, dim=self.tty)

    def step(self, message: str) -> None:
        typer.secho(f"==> {message}", err=True, bold=self.tty)

    def line(self, text: str) -> None:
        if not self.quiet and text.strip():
            typer.secho(f"    {text}", err=True, dim=self.tty)

    def result(self, text: str) -> None:
        typer.echo(text)

    def json(self, data) -> None:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))

    def error(self, message: str, advice: str | None) -> None:
        # One line for the problem and its fix; a failed command's own output follows it.
        first, _, rest = message.partition("\n")
        line = f"Error: {first}" + (f" Fix: {advice}" if advice else "")
        typer.secho(line, err=True, fg="red" if self.tty else None)
        if rest:
            typer.echo(rest, err=True)
        if self.log_path is not None:
            typer.echo(f"The full build log: {self.log_path}", err=True)
