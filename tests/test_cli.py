"""The command line, without Docker: help, version, versions, init and how errors are shown."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from boincserver import __version__, docs, pins
from boincserver.commands import cli
from boincserver.errors import BoincServerError, InvalidInput
from boincserver.settings import load

runner = CliRunner()


# Every command and group as the words that name it, e.g. ["secrets", "keys", "sign"].
COMMANDS = [path.split()[1:] for path, _ in docs.walk(typer.main.get_command(cli.app), "boincserver")]


def test_the_expected_commands_exist():
    names = {" ".join(c) for c in COMMANDS}
    assert {"init", "build", "up", "down", "status", "logs", "exec", "shell", "doctor", "versions",
            "base-image", "base-image ensure", "secrets keys sign", "app add", "create-work", "submit",
            "results", "batch abort", "backup", "restore", "upgrade", "ci github"} <= names


def test_the_command_modules_load_no_docker_jinja2_or_sql():
    code = ("import sys, boincserver.commands.cli; "
            "print(sorted(m for m in ('python_on_whales', 'jinja2', 'pymysql') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["create-work", "uppercase", "in.txt"],
                                     ["submit", "uppercase", "--jobs", "jobs.txt", "--dry-run"]])
def test_create_work_and_submit_hand_only_the_given_work_options_to_the_core(command, monkeypatch):
    from boincserver import jobs
    from boincserver.commands import jobs as job_commands
    seen = {}

    def record(*args):
        seen["work_options"] = next(a for a in args if isinstance(a, dict))
        raise InvalidInput("recorded")

    monkeypatch.setattr(jobs, "create_work", record)
    monkeypatch.setattr(jobs, "submit", record)
    monkeypatch.setattr(job_commands, "open_project", lambda: "project")
    result = runner.invoke(cli.app, [*command, "--priority", "5", "--rsc-fpops-est", "1e12",
                                     "--max-error-results", "3"])
    assert isinstance(result.exception, InvalidInput), result.output
    assert seen["work_options"] == {"priority": 5, "rsc_fpops_est": 1e12, "max_error_results": 3}


def test_version():
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"boincserver {__version__}"


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_of_every_command(words):
    result = runner.invoke(cli.app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert words[-1] in result.output


@pytest.mark.parametrize("words", [[], *COMMANDS], ids=lambda w: " ".join(w) or "boincserver")
def test_help_shows_no_typer_type_metavars(words):
    """No `--json <bool>`, `<str>`, `<list[str]>`, `{APP}` or lower-case argument names."""
    out = runner.invoke(cli.app, [*words, "--help"], terminal_width=200).output
    assert re.findall(r"<[^>\n]*>|\{[^}\n]*\}", out) == []
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    arguments = usage.split("[OPTIONS]", 1)[-1]
    assert not re.search(r"[a-z]", arguments.replace("COMMAND [ARGS]", "")), usage
    for line in out.splitlines():  # a flag's row: the option, then its help, no value between
        if re.match(r"[│|]\s+--(json|help|force|quiet)\b", line):
            assert re.match(r"[│|]\s+--[\w-]+(\s+-\w)?\s+[A-Z][a-z]", line), line


def test_help_names_option_values_classically():
    out = runner.invoke(cli.app, ["logs", "--help"], terminal_width=200).output
    assert re.search(r"--tail\s+TEXT\s", out)
    assert "[SERVICES]..." in out
    out = runner.invoke(cli.app, ["init", "--help"], terminal_width=200).output
    assert re.search(r"--http-port\s+INTEGER\s", out) and re.search(r"--offline-signing\s+PATH\s", out)


def test_top_level_help_lists_commands():
    result = runner.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    for name in ("init", "up", "down", "status", "base-image"):
        assert name in result.output


def test_versions_json():
    result = runner.invoke(cli.app, ["versions", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["boincserver"] == __version__
    assert data["boinc_commit"] == pins.BOINC_COMMIT
    assert data["boinc_release"] == pins.BOINC_RELEASE
    assert data["base_os_image"] == pins.BASE_OS_IMAGE
    assert data["base_images"] == {n: pins.base_image(n) for n in pins.BASE_IMAGE_NAMES}


def test_init_makes_a_project(tmp_path):
    target = tmp_path / "demo"
    result = runner.invoke(cli.app, ["init", str(target), "--url-base", "http://10.0.0.7:8080/",
                                     "--http-port", "9000"])
    assert result.exit_code == 0, result.output
    s = load(target)
    assert (s.project, s.url_base, s.http_port) == ("demo", "http://10.0.0.7:8080", 9000)
    assert "created" in result.stdout
    assert "boincserver up" in result.stdout


def test_init_project_option_overrides_folder_name(tmp_path):
    target = tmp_path / "Some-Folder"
    result = runner.invoke(cli.app, ["init", str(target), "--project", "alpha", "--boinc-user", "alice"])
    assert result.exit_code == 0, result.output
    s = load(target)
    assert (s.project, s.boinc_user, s.project_root) == ("alpha", "alice", "/home/alice/project")


def test_init_makes_missing_parent_folders(tmp_path):
    target = tmp_path / "projects" / "2026" / "demo"
    result = runner.invoke(cli.app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert load(target).project == "demo"


def test_init_with_a_bad_value_makes_no_parent_folder(tmp_path):
    result = runner.invoke(cli.app, ["init", str(tmp_path / "projects" / "demo"), "--http-port", "0"])
    assert isinstance(result.exception, InvalidInput)
    assert list(tmp_path.iterdir()) == []


def test_init_bad_url_surfaces_as_invalid_input(tmp_path):
    target = tmp_path / "demo"
    result = runner.invoke(cli.app, ["init", str(target), "--url-base", "http://boincsrv/"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput)
    assert "dot" in str(result.exception)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# -- main(): what a user sees --------------------------------------------------------------------
def run_main(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["boincserver", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code


def test_main_bad_url(tmp_path, monkeypatch, capsys):
    target = tmp_path / "demo"
    code = run_main(monkeypatch, "init", str(target), "--url-base", "http://boincsrv/")
    out = capsys.readouterr()
    assert code == 1
    assert out.err.startswith("Error: ")
    assert "dot" in out.err and "Traceback" not in out.err
    assert out.out == ""
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_main_bad_project_name_from_folder(tmp_path, monkeypatch, capsys):
    target = tmp_path / "My-Project"
    code = run_main(monkeypatch, "init", str(target))
    err = capsys.readouterr().err
    assert code == 1
    assert "Error: " in err and "project name" in err
    assert not target.exists()


def test_main_bad_port(tmp_path, monkeypatch, capsys):
    target = tmp_path / "demo"
    code = run_main(monkeypatch, "init", str(target), "--http-port", "70000")
    assert code == 1
    assert "HTTP port" in capsys.readouterr().err
    assert not target.exists()


def test_main_non_empty_folder(tmp_path, monkeypatch, capsys, take_snapshot):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "mine.txt").write_text("mine\n")
    before = take_snapshot(tmp_path)
    code = run_main(monkeypatch, "init", str(target))
    err = capsys.readouterr().err
    assert code == 1
    assert "Error: " in err and "not empty" in err
    assert "Fix: " in err
    assert take_snapshot(tmp_path) == before


def test_main_outside_a_project(tmp_path, monkeypatch, capsys):
    code = run_main(monkeypatch, "-C", str(tmp_path), "status")
    err = capsys.readouterr().err
    assert code == 1
    assert "Error: " in err and "not a boincserver project" in err
    assert "Fix: " in err and "boincserver init" in err
    assert list(tmp_path.iterdir()) == []


def test_main_version(monkeypatch, capsys):
    code = run_main(monkeypatch, "--version")
    assert code in (0, None)
    assert capsys.readouterr().out.strip() == f"boincserver {__version__}"


def test_main_success_exits_zero(tmp_path, monkeypatch, capsys):
    target = tmp_path / "demo"
    code = run_main(monkeypatch, "init", str(target))
    assert code in (0, None)
    assert load(target).project == "demo"
    assert capsys.readouterr().err == ""


def test_errors_share_one_family():
    from boincserver import errors
    for cls in (errors.InvalidInput, errors.ProjectError, errors.SourceError, errors.EnvironmentProblem,
                errors.DockerError):
        assert issubclass(cls, BoincServerError)
    err = errors.DockerError(["docker", "compose", "up"], 3, "line1\nboom\n")
    assert "docker compose up" in str(err) and "exit 3" in str(err) and "boom" in str(err)
