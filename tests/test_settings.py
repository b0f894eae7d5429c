"""A project's settings: defaults, boincserver.toml, locked values."""

from __future__ import annotations

import tomllib

import pytest

from boincserver import __version__, paths
from boincserver.errors import BoincServerError, InvalidInput, ProjectError
from boincserver.settings import (DEFAULT_URL_BASE, LOCKED, Settings, default_project_root, load,
                                  locked_changes, save, to_toml)


def test_defaults():
    s = Settings(project="demo")
    assert s.url_base == DEFAULT_URL_BASE == "http://127.0.0.1:8080"
    assert s.boinc_user == "boincadm"
    assert s.project_root == "/home/boincadm/project"
    assert s.http_port == 8080
    assert s.compose_name == "boincserver-demo"
    assert s.boincserver_version == __version__
    assert s.master_url == "http://127.0.0.1:8080/demo/"


def test_project_root_default_follows_boinc_user():
    s = Settings(project="demo", boinc_user="alice")
    assert s.project_root == default_project_root("alice") == "/home/alice/project"


def test_explicit_values_are_kept():
    s = Settings(project="demo", boinc_user="alice", project_root="/srv/boinc/demo",
                 compose_name="mystack", http_port=9000)
    assert (s.project_root, s.compose_name, s.http_port) == ("/srv/boinc/demo", "mystack", 9000)


def test_url_base_is_normalised():
    s = Settings(project="demo", url_base="HTTP://Boinc.Example.ORG:8443/")
    assert s.url_base == "http://boinc.example.org:8443"
    assert s.master_url == "http://boinc.example.org:8443/demo/"


@pytest.mark.parametrize("kwargs, word", [
    ({"project": "Bad-Name"}, "project name"),
    ({"project": "demo", "boinc_user": "root"}, "BOINC user"),
    ({"project": "demo", "project_root": "relative/path"}, "project root"),
    ({"project": "demo", "url_base": "http://boincsrv/"}, "dot"),
    ({"project": "demo", "url_base": "ftp://a.b"}, "http://"),
])
def test_invalid_values_raise_invalid_input(kwargs, word):
    with pytest.raises(InvalidInput) as exc:
        Settings(**kwargs)
    assert word in str(exc.value)
    assert isinstance(exc.value, BoincServerError)


@pytest.mark.parametrize("port", [0, -1, 65536, 100000, "8080", 8080.0, None])
def test_invalid_port(port):
    with pytest.raises(InvalidInput, match="HTTP port"):
        Settings(project="demo", http_port=port)


@pytest.mark.parametrize("port", [1, 80, 8080, 65535])
def test_valid_port(port):
    assert Settings(project="demo", http_port=port).http_port == port


def test_boolean_port_is_refused():
    with pytest.raises(InvalidInput):
        Settings(project="demo", http_port=True)


def test_env():
    s = Settings(project="demo", url_base="http://a.b:81/", http_port=9000)
    assert s.env() == {"PROJECT": "demo", "BOINC_USER": "boincadm", "PROJECT_ROOT": "/home/boincadm/project",
                       "URL_BASE": "http://a.b:81", "HTTP_PORT": "9000", "WORK_SLOTS": "500"}


@pytest.mark.parametrize("slots", [0, 99, 10_001, True, "500"])
def test_work_slots_out_of_range_are_refused_with_the_range(slots):
    with pytest.raises(InvalidInput, match="from 100 to 10000"):
        Settings(project="demo", work_slots=slots)


def test_work_slots_reach_the_env():
    assert Settings(project="demo", work_slots=2000).env()["WORK_SLOTS"] == "2000"


def test_locked_values():
    s = Settings(project="demo", boinc_user="alice")
    assert s.locked_values() == {"project": "demo", "boinc_user": "alice", "project_root": "/home/alice/project"}
    assert tuple(s.locked_values()) == LOCKED


def test_with_changes_ignores_none_and_validates():
    s = Settings(project="demo")
    t = s.with_changes(url_base=None, http_port=9090)
    assert (t.url_base, t.http_port) == (s.url_base, 9090)
    assert s.http_port == 8080  # frozen original untouched
    assert s.with_changes(url_base="HTTPS://A.B/").url_base == "https://a.b"
    with pytest.raises(InvalidInput):
        s.with_changes(url_base="http://boincsrv/")


# -- boincserver.toml -------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    Settings(project="demo"),
    Settings(project="p_2", url_base="https://[2001:db8::1]:8443", boinc_user="boinc-adm",
             project_root="/opt/boinc-1.6/p.x", http_port=65535, compose_name="my-stack"),
])
def test_to_toml_round_trips_through_load(tmp_path, settings):
    text = to_toml(settings)
    data = tomllib.loads(text)["project"]
    assert data["http_port"] == settings.http_port
    (tmp_path / paths.SETTINGS_FILE).write_text(text)
    assert load(tmp_path) == settings


HAND_MADE = """\
# boincserver settings of the physics group
# (kept in git; see docs/server.md)

[project]
boinc_user = "boincadm"          # do not change: the volume's files belong to it
project = 'demo'

# the public name
url_base = "http://old.example.org"
http_port = 8080

work_slots = 2000   # raised for the 2026 campaign
"""


def test_an_update_changes_only_the_changed_values():
    old = Settings(project="demo", url_base="http://old.example.org", work_slots=2000)
    new = old.with_changes(url_base="https://new.example.org", http_port=9000)
    text = to_toml(new, HAND_MADE)
    assert text == HAND_MADE.replace('"http://old.example.org"', '"https://new.example.org"') \
        .replace("http_port = 8080", "http_port = 9000")
    assert Settings(**tomllib.loads(text)["project"]) == new


def test_an_update_without_changes_is_the_file_itself():
    assert to_toml(Settings(project="demo", url_base="http://old.example.org", work_slots=2000),
                   HAND_MADE) == HAND_MADE


def test_an_update_adds_a_missing_value_only_when_it_is_not_the_default():
    text = to_toml(Settings(project="demo", url_base="http://old.example.org", work_slots=2000,
                            registry="ghcr.io/acme"), HAND_MADE)
    assert text.startswith(HAND_MADE.rstrip("\n"))
    added = text[len(HAND_MADE.rstrip("\n")):].split()
    assert added == ["registry", "=", '"ghcr.io/acme"']


def test_save_keeps_the_file_when_nothing_changed(tmp_path):
    path = write(tmp_path, HAND_MADE) / paths.SETTINGS_FILE
    before = path.stat().st_mtime_ns
    save(tmp_path, load(tmp_path))
    assert path.read_text() == HAND_MADE and path.stat().st_mtime_ns == before
    save(tmp_path, load(tmp_path).with_changes(http_port=9000))
    assert path.read_text() == HAND_MADE.replace("http_port = 8080", "http_port = 9000")
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths.SETTINGS_FILE]


def test_load_without_settings_file(tmp_path):
    with pytest.raises(ProjectError) as exc:
        load(tmp_path)
    assert "not a boincserver project" in str(exc.value)
    assert "boincserver init" in exc.value.advice


def write(tmp_path, text):
    (tmp_path / paths.SETTINGS_FILE).write_text(text)
    return tmp_path


def test_load_rejects_unknown_keys(tmp_path):
    write(tmp_path, to_toml(Settings(project="demo")) + 'db_password = "secret"\nzzz = 1\n')
    with pytest.raises(ProjectError) as exc:
        load(tmp_path)
    assert "db_password" in str(exc.value) and "zzz" in str(exc.value)


@pytest.mark.parametrize("text", ["[project\nproject = 'demo'\n", "project = 'demo'\n",
                                  "[other]\nproject = 'demo'\n", "[project]\nurl_base = 'http://a.b'\n"])
def test_load_rejects_broken_files(tmp_path, text):
    write(tmp_path, text)
    with pytest.raises(ProjectError):
        load(tmp_path)


def test_load_minimal_file_takes_defaults(tmp_path):
    write(tmp_path, '[project]\nproject = "demo"\n')
    assert load(tmp_path) == Settings(project="demo")


@pytest.mark.parametrize("line", ["http_port = 0", "http_port = \"8080\"", "url_base = \"http://boincsrv\"",
                                  "boinc_user = \"root\""])
def test_load_rejects_invalid_values(tmp_path, line):
    write(tmp_path, f'[project]\nproject = "demo"\n{line}\n')
    with pytest.raises(BoincServerError):
        load(tmp_path)


def test_load_rejects_non_string_url_base(tmp_path):
    write(tmp_path, '[project]\nproject = "demo"\nurl_base = 8080\n')
    with pytest.raises(BoincServerError):
        load(tmp_path)


# -- locked values -----------------------------------------------------------------------------
def recorded(settings, **extra):
    return {**settings.locked_values(), "created": "2025-01-01T00:00:00Z", "boinc_commit": "x", **extra}


def test_locked_changes_none_when_same():
    s = Settings(project="demo")
    assert locked_changes(recorded(s), s) == {}


def test_locked_changes_ignores_other_values():
    s = Settings(project="demo")
    rec = recorded(s, url_base="http://other.host", http_port=1, created="another day")
    assert locked_changes(rec, s.with_changes(url_base="http://x.y", http_port=9999)) == {}


def test_locked_changes_reports_each_locked_value():
    old = Settings(project="demo")
    new = Settings(project="other", boinc_user="alice")
    assert locked_changes(recorded(old), new) == {
        "project": ("demo", "other"),
        "boinc_user": ("boincadm", "alice"),
        "project_root": ("/home/boincadm/project", "/home/alice/project"),
    }


def test_locked_changes_only_project_root():
    old = Settings(project="demo")
    new = Settings(project="demo", project_root="/srv/demo")
    assert locked_changes(recorded(old), new) == {"project_root": ("/home/boincadm/project", "/srv/demo")}


def test_locked_changes_skips_values_not_recorded():
    s = Settings(project="demo", boinc_user="alice")
    assert locked_changes({"project": "demo"}, s) == {}
