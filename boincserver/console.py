"""What the CLI prints: steps, the lines of long work, results and errors."""

from __future__ import annotations

import json
import sys

import typer


class Console:
    """A Reporter for the core: steps always, the lines of builds unless quiet."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

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
