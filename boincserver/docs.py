"""The CLI reference in README.md, generated from the CLI itself.

`python -m boincserver.docs` rewrites the part of README.md between the markers; a test
fails when the README and the CLI disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"


# Typer's command objects are click's (typer may vendor click), so they are read by duck typing.
def _is_group(cmd) -> bool:
    return hasattr(cmd, "list_commands")


def walk(group, prefix: str):
    """Every visible command and group under `group`, as ("PREFIX NAME ...", command), in help order."""
    ctx = group.context_class(group, info_name=prefix)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield f"{prefix} {name}", cmd
        if _is_group(cmd):
            yield from walk(cmd, f"{prefix} {name}")


def _usage(path: str, cmd) -> str:
    ctx = cmd.context_class(cmd, info_name=path)
    return " ".join(cmd.collect_usage_pieces(ctx))


def _options(cmd) -> list[str]:
    lines = []
    for p in cmd.params:
        if p.param_type_name == "option":
            names = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            lines.append(f"- {names}: {p.help or ''}".rstrip())
        else:
            lines.append(f"- `{(p.name or '').upper()}`: {getattr(p, 'help', '') or ''}".rstrip())
    return lines


def cli_reference() -> str:
    from boincserver.commands.cli import app

    from boincserver.commands.metavars import tidy_root

    root = typer.main.get_command(app)
    tidy_root(root)  # as `boincserver --help` shows it: APP, [SERVICES]...
    out = ["Global options: " + ", ".join(
        f"`{' | '.join(p.opts)}`" for p in root.params if p.param_type_name == "option") + ".", ""]
    for path, cmd in walk(root, "boincserver"):
        if _is_group(cmd):
            continue
        out.append(f"### `{path} {_usage(path, cmd)}`")
        out.append("")
        out.append((cmd.help or "").strip().splitlines()[0])
        opts = _options(cmd)
        if opts:
            out.append("")
            out.extend(opts)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def splice(readme: str, reference: str) -> str:
    head, sep, rest = readme.partition(START)
    if not sep or END not in rest:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    _old, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference}{END}{tail}"


def main(argv: list[str]) -> int:
    readme = Path(argv[0] if argv else "README.md")
    readme.write_text(splice(readme.read_text(), cli_reference()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
