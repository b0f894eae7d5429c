"""Nothing prompts without a terminal: the error names the variable or option that answers instead.

CliRunner's standard input is not a terminal, as in CI, cron or a pipe. Each command that may
ask (a backup passphrase, a yes before deleting data) must fail at once, exit non-zero, and
leave everything as it was: the use case behind it is never reached.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from boincserver import backup as backup_core
from boincserver import project as project_core
from boincserver import secrets as secrets_core
from boincserver import upgrade as upgrade_core
from boincserver import volunteer as volunteer_core
from boincserver.commands import backup as backup_commands
from boincserver.commands import cli, context
from boincserver.commands import project as project_commands
from boincserver.commands import secrets as secrets_commands
from boincserver.commands import volunteer as volunteer_commands
from boincserver.errors import InvalidInput

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
FAKE = SimpleNamespace(settings=SimpleNamespace(project="demo", deploy="compose"), dir=Path("/nowhere"))


def never(*args, **kwargs):
    raise AssertionError("the use case ran although the command had to stop first")


@pytest.fixture
def no_docker(monkeypatch):
    """Every command module opens a fake project; every use case that could change something fails."""
    monkeypatch.delenv(context.PASSPHRASE_ENV, raising=False)
    for module in (backup_commands, project_commands, secrets_commands, volunteer_commands):
        monkeypatch.setattr(module, "open_project", lambda: FAKE)
    for module, name in ((backup_core, "backup"), (backup_core, "restore"), (secrets_core, "backup"),
                         (secrets_core, "restore"), (project_core, "down"), (volunteer_core, "down")):
        monkeypatch.setattr(module, name, never)
    monkeypatch.setattr(volunteer_core, "folder", lambda p: Path("/nowhere/volunteer"))


PASSPHRASE_COMMANDS = [["backup", "x.backup"], ["restore", "x.backup"],
                       ["secrets", "backup", "x.backup"], ["secrets", "restore", "x.backup"]]


@pytest.mark.parametrize("words", PASSPHRASE_COMMANDS, ids=" ".join)
def test_passphrase_without_a_terminal_names_the_variable(words, no_docker, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli.app, words)
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput), result.output
    assert context.PASSPHRASE_ENV in result.exception.advice
    assert "no terminal" in str(result.exception)
    assert "Aborted" not in result.output and "Password" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_variable_gives_the_passphrase_without_a_terminal(no_docker, monkeypatch):
    seen = []

    def backup(project, reporter, file, phrase):
        seen.append(phrase)
        raise InvalidInput("recorded")

    monkeypatch.setenv(context.PASSPHRASE_ENV, "from the environment")
    monkeypatch.setattr(backup_core, "backup", backup)
    result = runner.invoke(cli.app, ["backup", "x.backup"])
    assert str(result.exception) == "recorded"
    assert seen == ["from the environment"]


def test_upgrade_asks_for_no_passphrase_without_a_terminal(no_docker, monkeypatch):
    def upgrade(project, reporter, passphrase, backup_file, dry_run=False):
        passphrase()  # where the real one asks, before its backup: nothing is changed yet
        raise AssertionError("went on without a passphrase")

    monkeypatch.setattr(backup_commands, "open_project", lambda: FAKE)
    monkeypatch.setattr(upgrade_core, "upgrade", upgrade)
    result = runner.invoke(cli.app, ["upgrade"])
    assert isinstance(result.exception, InvalidInput)
    assert context.PASSPHRASE_ENV in result.exception.advice


@pytest.mark.parametrize("words", [["down", "--volumes"], ["volunteer", "down", "--data"]], ids=" ".join)
def test_deleting_without_a_terminal_names_yes(words, no_docker):
    result = runner.invoke(cli.app, words)
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput), result.output
    assert "--yes" in result.exception.advice
    assert "nothing was deleted" in str(result.exception)


@pytest.mark.parametrize("words", [["down", "--volumes", "--yes"], ["volunteer", "down", "--data", "-y"]],
                         ids=" ".join)
def test_yes_deletes_without_a_terminal(words, no_docker, monkeypatch):
    def reached(*args, **kwargs):
        raise InvalidInput("reached")

    monkeypatch.setattr(project_core, "down", reached)
    monkeypatch.setattr(volunteer_core, "down", reached)
    result = runner.invoke(cli.app, words)
    assert str(result.exception) == "reached"


def test_what_a_user_sees_from_backup_in_a_pipe(no_docker, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("not a passphrase\n"))
    monkeypatch.setattr(sys, "argv", ["boincserver", "backup", "x.backup"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Error: " in err and context.PASSPHRASE_ENV in err
    assert "Aborted" not in err and "GetPassWarning" not in err


def test_only_the_guarded_helpers_prompt():
    """A new prompt elsewhere would ask without a terminal: prompts go through commands/context.py."""
    offenders = []
    for path in (ROOT / "boincserver").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"\btyper\.(prompt|confirm)\(", r"\bgetpass\b", r"(?<![\w.])input\(", r"\bclick\.(prompt|confirm)\("):
            if re.search(pattern, text) and path != ROOT / "boincserver/commands/context.py":
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []
