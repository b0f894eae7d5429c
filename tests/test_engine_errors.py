"""Without a reachable Docker engine every command gives doctor's advice, not a traceback.

Real, not mocked: DOCKER_HOST points at a socket where no engine listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client installed")


@pytest.mark.parametrize("command", [["status"], ["up"], ["build"], ["down"], ["doctor"]])
def test_engine_not_running_gives_the_fix(tmp_path, command):
    project = tmp_path / "proj"
    subprocess.run([sys.executable, "-m", "boincserver", "init", str(project)], check=True, capture_output=True)
    before = sorted(p.name for p in project.iterdir())
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    done = subprocess.run([sys.executable, "-m", "boincserver", "-C", str(project), *command],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    assert "engine is not reachable" in text
    assert "dockerd" in text or "systemctl start docker" in text
    assert sorted(p.name for p in project.iterdir()) == before
