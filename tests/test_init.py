"""`boincserver init`: the scaffolded project folder, and the digest of a project's build inputs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from boincserver import context, images, paths, pins, project, render
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load

EXPECTED_FILES = {
    "compose.yaml", "stack.yaml", ".env", "README.md", ".gitignore", "apps/README.md",
    "images/mysql/Dockerfile", "images/apache/Dockerfile", "images/makeproject/Dockerfile",
    "boincserver.toml", ".dockerignore",
}


def files_of(folder):
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def top_level_block(text, key):
    """The names directly under a top-level `key:` of a YAML file (two-space indent)."""
    names, inside = [], False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == f"{key}:"
            continue
        m = re.match(r"^  ([A-Za-z0-9_-]+):", line)
        if inside and m:
            names.append(m.group(1))
    return names


def env_file(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line and not line.startswith("#"))


@pytest.fixture
def settings():
    return Settings(project="demo", url_base="HTTP://Boinc.Example.ORG:8080/")


@pytest.fixture
def made(tmp_path, settings):
    target = tmp_path / "demo"
    written = project.init(target, settings)
    return target, written


def test_init_creates_the_expected_files(made):
    target, written = made
    assert files_of(target) == EXPECTED_FILES
    assert {str(w.path.relative_to(target)) for w in written} == EXPECTED_FILES
    assert {w.state for w in written} == {"created"}
    assert all(w.path.is_file() for w in written)


def test_init_leaves_nothing_beside_the_project(tmp_path, made):
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.parametrize("service", ["mysql", "apache", "makeproject"])
def test_dockerfiles_start_from_the_pinned_base_image(made, service):
    target, _ = made
    text = (target / "images" / service / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM")]
    assert froms == [f"FROM {pins.base_image(service)}"]


def test_compose_yaml(made, settings):
    target, _ = made
    text = (target / "compose.yaml").read_text()
    assert sorted(top_level_block(text, "services")) == ["apache", "makeproject", "mysql"]
    assert {"mysql", "project", "secrets", "results"} <= set(top_level_block(text, "volumes"))
    assert f"name: {settings.compose_name}" in text.splitlines()
    assert '"127.0.0.1::3306"' in text
    assert "latest" not in text.lower()
    images_ = [line.split("image:", 1)[1].strip() for line in text.splitlines()
               if line.strip().startswith("image:")]
    assert len(images_) == 3
    for ref in images_:
        name, _, tag = ref.rpartition(":")
        assert name and tag and tag != "latest"
    assert "{{" not in text and "{%" not in text  # fully rendered


def test_env_file(made):
    target, _ = made
    env = env_file(target / ".env")
    assert env == {"PROJECT": "demo", "BOINC_USER": "boincadm", "PROJECT_ROOT": "/home/boincadm/project",
                   "URL_BASE": "http://boinc.example.org:8080", "HTTP_PORT": "8080",
                   "WORK_SLOTS": "500"}


def test_settings_file_loads_back(made, settings):
    target, _ = made
    assert load(target) == settings


def test_dockerignore_keeps_settings_out_of_the_build(made):
    target, _ = made
    lines = (target / ".dockerignore").read_text().splitlines()
    assert ".env" in lines and paths.SETTINGS_FILE in lines


def test_no_template_syntax_left(made):
    target, _ = made
    for rel in EXPECTED_FILES:
        text = (target / rel).read_text()
        assert "{{" not in text and "{%" not in text, rel


def test_refuses_a_non_empty_folder(tmp_path, settings, take_snapshot):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "notes.txt").write_text("keep me\n")
    before = take_snapshot(tmp_path)
    with pytest.raises(ProjectError) as exc:
        project.init(target, settings)
    assert "not empty" in str(exc.value)
    assert take_snapshot(tmp_path) == before
    assert (target / "notes.txt").read_text() == "keep me\n"


def test_refuses_a_folder_with_only_hidden_files(tmp_path, settings, take_snapshot):
    target = tmp_path / "demo"
    (target / ".git").mkdir(parents=True)
    before = take_snapshot(tmp_path)
    with pytest.raises(ProjectError):
        project.init(target, settings)
    assert take_snapshot(tmp_path) == before


def test_refuses_an_existing_project(made, tmp_path, settings, take_snapshot):
    target, _ = made
    (target / ".env").write_text("PROJECT=edited\n")
    before = take_snapshot(tmp_path)
    with pytest.raises(ProjectError, match="already a boincserver project"):
        project.init(target, Settings(project="other"))
    assert take_snapshot(tmp_path) == before


def test_refuses_a_file_in_the_way(tmp_path, settings, take_snapshot):
    target = tmp_path / "demo"
    target.write_text("a file\n")
    before = take_snapshot(tmp_path)
    with pytest.raises(ProjectError):
        project.init(target, settings)
    assert take_snapshot(tmp_path) == before


def test_makes_missing_parent_folders(tmp_path, settings):
    target = tmp_path / "no" / "such" / "demo"
    written = project.init(target, settings)
    assert files_of(target) == EXPECTED_FILES
    assert all(target in w.path.parents for w in written)
    assert [p.name for p in (tmp_path / "no" / "such").iterdir()] == ["demo"]
    assert load(target) == settings


def test_makes_missing_parents_of_a_relative_folder(tmp_path, settings, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project.init(Path("a/b/demo"), settings)
    assert files_of(tmp_path / "a" / "b" / "demo") == EXPECTED_FILES


def test_refuses_a_file_in_the_way_of_a_parent(tmp_path, settings, take_snapshot):
    (tmp_path / "no").write_text("a file\n")
    before = take_snapshot(tmp_path)
    with pytest.raises(InvalidInput, match="not a folder"):
        project.init(tmp_path / "no" / "such" / "demo", settings)
    assert take_snapshot(tmp_path) == before


def test_refuses_an_unwritable_place_and_makes_nothing(tmp_path, settings, monkeypatch):
    real = Path.mkdir

    def denied(self, *args, **kwargs):
        if self.name == "such":  # the first parent is made, the second is refused
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(InvalidInput, match="cannot create .*Permission denied"):
        project.init(tmp_path / "no" / "such" / "demo", settings)
    assert list(tmp_path.iterdir()) == []


def test_failure_after_making_parents_removes_them(tmp_path, settings, monkeypatch):
    def fail(folder, s, *, initial):
        raise OSError("disk full")

    monkeypatch.setattr(render, "write_project", fail)
    with pytest.raises(OSError, match="disk full"):
        project.init(tmp_path / "no" / "such" / "demo", settings)
    assert list(tmp_path.iterdir()) == []


def test_accepts_an_empty_existing_folder(tmp_path, settings):
    target = tmp_path / "demo"
    target.mkdir()
    written = project.init(target, settings)
    assert files_of(target) == EXPECTED_FILES
    assert all(w.path.parent == target or target in w.path.parents for w in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert load(target) == settings


def test_relative_folder_is_made_in_the_working_directory(tmp_path, settings, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = project.init(Path("demo"), settings)
    assert files_of(tmp_path / "demo") == EXPECTED_FILES
    assert all(w.path.is_absolute() for w in written)


@pytest.mark.parametrize("existing", [False, True])
def test_failure_while_writing_leaves_nothing(tmp_path, settings, monkeypatch, existing):
    target = tmp_path / "demo"
    if existing:
        target.mkdir()
    real = render.write_project

    def half_then_fail(folder, s, *, initial):
        real(folder, s, initial=initial)
        raise OSError("disk full")

    monkeypatch.setattr(render, "write_project", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        project.init(target, settings)
    if existing:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
        assert list(target.iterdir()) == []
    else:
        assert list(tmp_path.iterdir()) == []


def test_new_project_folder_honours_umask(tmp_path, settings):
    old = os.umask(0o022)
    try:
        (tmp_path / "reference").mkdir()
        project.init(tmp_path / "demo", settings)
    finally:
        os.umask(old)
    expected = (tmp_path / "reference").stat().st_mode & 0o777
    assert (tmp_path / "demo").stat().st_mode & 0o777 == expected


# -- project_inputs_digest ---------------------------------------------------------------------
class FakeEngine:
    """Only what project_inputs_digest asks: the labels of the base images."""

    def __init__(self, label="base-digest-1"):
        self.label = label
        self.asked = []

    def image_labels(self, tag):
        self.asked.append(tag)
        return {images.INPUTS_LABEL: self.label} if self.label is not None else None


@pytest.fixture
def proj(made, settings):
    target, _ = made
    return context.Project(target, settings, FakeEngine())


def test_digest_is_stable_and_needs_no_base_image(proj):
    a = project.project_inputs_digest(proj, "apache")
    assert a == project.project_inputs_digest(proj, "apache")
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    # Computed from the base image's wanted inputs: a machine that only pulls can compute it.
    assert proj.engine.asked == []


def test_digest_differs_between_services(proj):
    digests = {s: project.project_inputs_digest(proj, s) for s in project.SERVICES}
    assert len(set(digests.values())) == 3


def test_digest_follows_project_files(proj):
    before = project.project_inputs_digest(proj, "apache")
    dockerfile = proj.dir / "images" / "apache" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN true\n")
    after_edit = project.project_inputs_digest(proj, "apache")
    assert after_edit != before
    (proj.dir / "apps" / "uc2").mkdir()
    (proj.dir / "apps" / "uc2" / "version.xml").write_text("<version/>\n")
    assert project.project_inputs_digest(proj, "apache") != after_edit


def test_digest_ignores_settings_files(proj):
    before = project.project_inputs_digest(proj, "makeproject")
    (proj.dir / ".env").write_text("URL_BASE=http://10.0.0.1\n")
    (proj.dir / paths.SETTINGS_FILE).write_text(
        (proj.dir / paths.SETTINGS_FILE).read_text().replace("8080", "9090"))
    (proj.dir / ".git").mkdir()
    (proj.dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert project.project_inputs_digest(proj, "makeproject") == before


def test_digest_follows_the_base_images_inputs(proj, monkeypatch):
    before = project.project_inputs_digest(proj, "mysql")
    monkeypatch.setattr(images, "inputs_digest", lambda name, *a, **k: "another base")
    assert project.project_inputs_digest(proj, "mysql") != before


def test_digest_follows_locked_values(proj, settings):
    before = project.project_inputs_digest(proj, "apache")
    proj.settings = Settings(project="demo", boinc_user="alice")
    assert project.project_inputs_digest(proj, "apache") != before
