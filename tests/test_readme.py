"""README.md states the two set-up commands first and carries the CLI's own reference."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from boincserver import docs
from boincserver.commands import cli

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_in_readme_matches_the_cli():
    readme = (ROOT / "README.md").read_text()
    assert docs.splice(readme, docs.cli_reference()) == readme, \
        "README.md's CLI reference is stale: run `python -m boincserver.docs README.md`"


def test_readme_opens_with_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["./run demo", "./run test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert "./run test" in ci


def test_no_latest_tag_anywhere():
    offenders = []
    for folder in ("images", "compose", "boincserver", "secrets", "examples", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix not in (".pyc",):
                text = path.read_text(errors="ignore")
                if re.search(r":latest\b", text):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# -- every command and option the README names exists ----------------------------------------
def _prose(readme: str) -> str:
    """The README without its generated CLI reference (that one is tested above)."""
    head, _, rest = readme.partition(docs.START)
    return head + rest.partition(docs.END)[2]


def readme_command_lines(readme: str) -> list[str]:
    """Command lines the README names: `boincserver ...` lines of its code blocks (joined at a
    trailing backslash) and inline code that starts with `boincserver` or one of its commands
    and names an option (`up --url-base URL`), each without the `boincserver` word."""
    text = _prose(readme)
    top = {path.split()[1] for path, _ in docs.walk(typer.main.get_command(cli.app), "boincserver")}
    found = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:^|[\s;&|(])boincserver\s+([^#;&|)]+)", line)
            if m:
                found.append(m.group(1).strip())
    for code in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        words = code.split()
        if words[0] == "boincserver" and len(words) > 1:
            found.append(" ".join(words[1:]))
        elif words[0] in top and any(w.startswith("--") for w in words):
            found.append(code)
    return found


def _options(cmd) -> dict:
    return {o: p for p in cmd.params if p.param_type_name == "option" for o in p.opts + p.secondary_opts}


def check_command_line(line: str) -> list[str]:
    """What of `line` the CLI lacks: an unknown command, or an option its command does not take."""
    root = typer.main.get_command(cli.app)
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    cmd, path = root, []
    words = iter(words)
    for word in words:
        if word == "--":  # what follows is a command for a container or an image
            break
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = {**_options(root), **_options(cmd)}.get(name)
            if option is None and name not in ("--help", "-h"):
                return [f"`boincserver {line}`: {' '.join(path) or 'boincserver'} has no option {name}"]
            if option is not None and not (option.is_flag or option.count) and "=" not in word:
                next(words, None)  # its value, which may start with "-"
            continue
        if hasattr(cmd, "list_commands"):
            sub = cmd.get_command(cmd.context_class(cmd, info_name="boincserver"), word)
            if sub is None:
                return [f"`boincserver {line}`: no command {' '.join(path + [word])}"]
            cmd, path = sub, path + [word]
    return []


def test_the_readme_names_command_lines():
    lines = readme_command_lines((ROOT / "README.md").read_text())
    assert len(lines) > 40
    assert "init myproject --url-base https://boinc.example.org --http-port 80 --acme-email ops@example.org" in lines
    assert "up --url-base URL" in lines


def test_every_command_and_option_the_readme_names_exists():
    problems = [p for line in readme_command_lines((ROOT / "README.md").read_text())
                for p in check_command_line(line)]
    assert problems == []


@pytest.mark.parametrize("line, problem", [
    ("app add --sign-key DIR/code_sign_private", "app add has no option --sign-key"),
    ("apps add x", "no command apps"),
    ("secrets keys frobnicate", "no command secrets keys frobnicate"),
    ("-C demo up --url-base=https://x.example.org", None),
    ("create-work --image alpine --output o.txt -- sh -c --not-ours", None),
])
def test_the_check_finds_what_the_cli_lacks(line, problem):
    problems = check_command_line(line)
    assert (problem in problems[0]) if problem else problems == [], problems
