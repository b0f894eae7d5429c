"""What a build shows: one line per image and step on screen, Docker's whole output in a log
file, whose path an error prints."""

from __future__ import annotations

import pytest

from boincserver import context, project
from boincserver.console import Console
from boincserver.errors import DockerError
from boincserver.settings import Settings, load

from fakes import RecordingEngine

CLASSIC = ["Sending build context to Docker daemon  3.1MB", "Step 1/3 : FROM debian:bookworm-slim",
           " ---> 1234", "Step 2/3 : RUN apt-get update &&     apt-get install -y make",
           "Get:1 http://deb.example/debian bookworm InRelease [151 kB]", " ---> Running in abcd",
           "Step 3/3 : LABEL org.boincserver.inputs=abc", "Successfully built 5678"]
BUILDKIT = ["#0 building with \"default\" instance using docker driver", "#5 [1/2] FROM docker.io/library/debian",
            "#5 DONE 0.0s", "#6 [build 2/2] RUN make -j2", "#6 0.512 gcc -c sched.cpp", "#6 DONE 95.1s",
            "#7 exporting to image"]


@pytest.fixture
def console(tmp_path):
    return Console(log_dir=tmp_path / "logs")


def test_a_build_shows_one_line_per_step_and_keeps_everything_in_the_log(console, capsys):
    console.step("building base image boincserver/mysql:1 (missing)")
    for line in CLASSIC + BUILDKIT:
        console.build_line(line)
    err = capsys.readouterr().err.splitlines()
    assert err == ["==> building base image boincserver/mysql:1 (missing)",
                   "    step 1/3: FROM debian:bookworm-slim",
                   "    step 2/3: RUN apt-get update && apt-get install -y make",
                   "    step 3/3: LABEL org.boincserver.inputs=abc",
                   "    step 1/2: FROM docker.io/library/debian",
                   "    step 2/2: RUN make -j2"]
    assert console.log_path.parent == console.log_dir
    assert console.log_path.read_text().splitlines() == CLASSIC + BUILDKIT


def test_quiet_shows_no_step_but_keeps_the_log(console, capsys):
    console.start(quiet=True)
    for line in CLASSIC:
        console.build_line(line)
    assert capsys.readouterr().err == ""
    assert console.log_path.read_text().splitlines() == CLASSIC


def test_a_long_step_is_cut_to_one_line(console, capsys):
    console.build_line("Step 4/9 : RUN " + "x" * 300)
    (line,) = capsys.readouterr().err.splitlines()
    assert len(line) < 130 and line.endswith("...")


def test_an_error_after_a_build_names_the_log(console, capsys):
    console.error("nothing built yet", "a fix")
    assert "build log" not in capsys.readouterr().err
    console.build_line("Step 1/1 : RUN false")
    err = DockerError(["docker", "build", "."], 1, "The command '/bin/sh -c false' returned a non-zero code: 1")
    console.error(str(err), err.advice)
    shown = capsys.readouterr().err
    assert "Error: `docker build .` failed (exit 1)" in shown
    assert f"The full build log: {console.log_path}" in shown
    console.start(quiet=False)  # the next command has a log of its own
    console.error("another problem", None)
    assert "build log" not in capsys.readouterr().err


def test_builds_send_their_lines_to_the_console_s_build_line(tmp_path):
    project.init(tmp_path / "demo", Settings(project="demo"))
    p = context.Project(tmp_path / "demo", load(tmp_path / "demo"), RecordingEngine())
    p.engine.base_images_current()  # the project's images are built (the base images take the same sink)
    console = Console(log_dir=tmp_path / "logs")
    project.build(p, console)
    sinks = {c.args["on_line"] for c in p.engine.named("build_image")}
    assert sinks == {console.build_line}


def test_a_reporter_without_build_line_gets_the_lines_as_lines():
    class Plain:
        def __init__(self):
            self.lines = []

        def step(self, message):
            pass

        def line(self, text):
            self.lines.append(text)

    r = Plain()
    context.build_lines(r)("Step 1/1 : FROM x")
    assert r.lines == ["Step 1/1 : FROM x"]


def test_only_the_newest_build_logs_are_kept(console):
    console.log_dir.mkdir()
    for i in range(30):
        (console.log_dir / f"build-20260101-0000{i:02d}-1.log").write_text("old\n")
    console.build_line("Step 1/1 : FROM x")
    kept = sorted(p.name for p in console.log_dir.iterdir())
    assert len(kept) == 20 and console.log_path.name in kept
    assert "build-20260101-000010-1.log" not in kept and "build-20260101-000029-1.log" in kept
