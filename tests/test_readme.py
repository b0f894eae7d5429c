"""README.md states the two set-up commands first and carries the CLI's own reference."""

from __future__ import annotations

import re
from pathlib import Path

from boincserver import docs

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
