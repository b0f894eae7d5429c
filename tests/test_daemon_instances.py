"""Parallel instances of BOINC's daemons (`--mod N i`): config.xml, the setting, the containers."""

from __future__ import annotations

import re
import tomllib

import pytest

from boincserver.boinc import apps as ba
from boincserver.boinc import configxml, metrics
from boincserver.boinc.daemon_instances import (DaemonInstancesError, check_counts, from_env, instance_name,
                                                to_env, with_instances)
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load, save, to_toml

# config.xml's <daemons> as make_project writes them (a trailing space after -d 3) and as
# `app add` adds an app's validator and assimilator (boinc/apps.py), with a task that runs a
# program of the same name and a daemon on another host.
CONFIG = """<?xml version="1.0" ?>
<boinc>
  <config>
    <host>boincserver</host>
  </config>
  <tasks>
    <task>
      <cmd>file_deleter -d 2 --dont_delete_batches</cmd>
      <period>24 hours</period>
    </task>
  </tasks>
  <daemons>
    <daemon>
      <cmd>feeder -d 3 --sleep_interval 1</cmd>
    </daemon>
    <daemon>
      <cmd>transitioner -d 3 </cmd>
    </daemon>
    <daemon>
      <cmd>file_deleter -d 3 </cmd>
      <host>boincserver2</host>
    </daemon>
    <daemon>
      <cmd>sample_work_generator -d 3 --app up</cmd>
    </daemon>
""" + "".join(d.xml() for d in ba.app_daemons("up") + ba.app_daemons("down", "sample_bitwise_validator -d 3")) + """\
  </daemons>
</boinc>
"""


def daemon_blocks(text: str) -> list[str]:
    return re.findall(r"<daemon>.*?</daemon>", text, re.S)


def commands(text: str) -> list[str]:
    return [configxml.get_element(b, "cmd") for b in daemon_blocks(text)]


def pid_files(text: str) -> list[str]:
    return [e.pid_file for e in metrics.daemons(text)]


# -- config.xml ---------------------------------------------------------------------------------
def test_no_counts_leave_the_file_as_it_is():
    assert with_instances(CONFIG, {}) == CONFIG
    assert with_instances(CONFIG, {"transitioner": 1, "validator": 1, "feeder": 1}) == CONFIG


def test_the_transitioner_in_two_instances_each_with_its_own_files():
    text = with_instances(CONFIG, {"transitioner": 2})
    assert [c for c in commands(text) if c.startswith("transitioner")] == [
        "transitioner -d 3 --mod 2 0", "transitioner -d 3 --mod 2 1"]
    blocks = [b for b in daemon_blocks(text) if "<cmd>transitioner" in b]
    assert [configxml.get_element(b, "output") for b in blocks] == [f"transitioner_mod2_{i}.log" for i in (0, 1)]
    assert [configxml.get_element(b, "pid_file") for b in blocks] == [f"transitioner_mod2_{i}.pid" for i in (0, 1)]
    # in the original's place, with the file's indentation; nothing else changed
    assert "    <daemon>\n      <cmd>transitioner -d 3 --mod 2 0 </cmd>\n      <output>transitioner_mod2_0.log" \
           "</output>\n      <pid_file>transitioner_mod2_0.pid</pid_file>\n    </daemon>\n    <daemon>\n" in text
    assert commands(text)[0].startswith("feeder") and commands(text)[3].startswith("file_deleter")
    assert text.replace(blocks[0], "", 1).count("<daemon>") == CONFIG.count("<daemon>")


def test_every_apps_validator_and_assimilator_keeps_its_own_names_as_the_base():
    text = with_instances(CONFIG, {"validator": 2, "assimilator": 3})
    cmds = commands(text)
    assert [c for c in cmds if "validator" in c] == [
        "sample_trivial_validator --app up --mod 2 0", "sample_trivial_validator --app up --mod 2 1",
        "sample_bitwise_validator -d 3 --app down --mod 2 0", "sample_bitwise_validator -d 3 --app down --mod 2 1"]
    assert len([c for c in cmds if c.startswith("sample_assimilator --app up --mod 3 ")]) == 3
    assert len([c for c in cmds if c.startswith("sample_assimilator --app down --mod 3 ")]) == 3
    pids = pid_files(text)
    assert "sample_trivial_validator_up_mod2_1.pid" in pids and "sample_assimilator_down_mod3_2.pid" in pids
    assert len(pids) == len(set(pids))  # bin/start tells every instance apart
    # the app's daemons are still found by its name (app list, remote_apps)
    assert len(ba.app_daemon_commands(ba.config_daemon_commands(text), "up")) == 6  # with the work generator


def test_the_host_goes_with_each_instance():
    text = with_instances(CONFIG, {"file_deleter": 3})
    blocks = [b for b in daemon_blocks(text) if "<cmd>file_deleter" in b]
    assert len(blocks) == 3 and all(configxml.get_element(b, "host") == "boincserver2" for b in blocks)
    assert "file_deleter -d 2 --dont_delete_batches" in text  # the task of that name is no daemon


@pytest.mark.parametrize("counts", [
    {"transitioner": 2}, {"transitioner": 32, "file_deleter": 2},
    {"validator": 2, "assimilator": 4, "transitioner": 3, "file_deleter": 2, "db_purge": 2},
])
def test_idempotent_and_folded_back_to_exactly_the_original(counts):
    text = with_instances(CONFIG, counts)
    assert text != CONFIG
    assert with_instances(text, counts) == text
    assert with_instances(text, {}) == CONFIG
    assert with_instances(text, {k: 1 for k in counts}) == CONFIG


def test_a_new_count_replaces_the_old_one():
    three = with_instances(with_instances(CONFIG, {"transitioner": 2, "validator": 4}), {"transitioner": 3})
    assert three == with_instances(CONFIG, {"transitioner": 3})
    assert with_instances(three, {"transitioner": 2}) == with_instances(CONFIG, {"transitioner": 2})


def test_db_purge_when_the_project_runs_it():
    config = CONFIG.replace("  </daemons>", "    <daemon>\n      <cmd>db_purge -d 2 --min_age_days 7</cmd>\n"
                                            "      <output>purge.log</output>\n    </daemon>\n  </daemons>")
    text = with_instances(config, {"db_purge": 2})
    blocks = [b for b in daemon_blocks(text) if "db_purge" in b]
    assert [configxml.get_element(b, "output") for b in blocks] == ["purge_mod2_0.log", "purge_mod2_1.log"]
    assert [configxml.get_element(b, "pid_file") for b in blocks] == ["db_purge_mod2_0.pid", "db_purge_mod2_1.pid"]
    assert with_instances(text, {}) == config
    assert with_instances(CONFIG, {"db_purge": 2}) == CONFIG  # none to multiply


def test_other_programs_the_feeder_and_a_users_own_mod_are_left_alone():
    mine = CONFIG.replace("transitioner -d 3 ", "transitioner -d 3 --mod 4 1")
    text = with_instances(mine, {"transitioner": 2, "file_deleter": 2})
    assert "transitioner -d 3 --mod 4 1" in text and "--mod 2" not in text.split("file_deleter")[0]
    assert commands(text).count("feeder -d 3 --sleep_interval 1") == 1
    assert commands(text).count("sample_work_generator -d 3 --app up") == 1
    everything = with_instances(CONFIG, {"transitioner": 2, "file_deleter": 2, "validator": 2, "assimilator": 2})
    assert not any("--mod" in c for c in commands(everything) if c.split()[0] in ("feeder", "sample_work_generator"))


def test_a_doubled_entry_an_app_install_wrote_again_joins_its_instances():
    text = with_instances(CONFIG, {"validator": 2})
    again = text.replace("  </daemons>", ba.app_daemons("up")[0].xml() + "  </daemons>")
    assert with_instances(again, {"validator": 2}).count("sample_trivial_validator --app up") == 3  # user's entry kept
    # instances met after their original (the plain entry) are folded into it
    plain_first = CONFIG.replace("  </daemons>", "".join(
        b for b in re.findall(r"[ \t]*<daemon>.*?</daemon>\n", text, re.S) if "--app up --mod" in b
        and "validator" in b) + "  </daemons>")
    assert with_instances(plain_first, {}) == CONFIG


def test_an_entry_without_a_newline_layout_still_folds_back():
    config = "<boinc><daemons><daemon><cmd>transitioner</cmd></daemon></daemons></boinc>\n"
    text = with_instances(config, {"transitioner": 2})
    assert commands(text) == ["transitioner --mod 2 0", "transitioner --mod 2 1"]
    assert pid_files(text) == ["transitioner_mod2_0.pid", "transitioner_mod2_1.pid"]
    assert with_instances(text, {}) == config


def test_dev_null_output_stays_and_names_without_extension():
    config = ("<boinc><daemons>\n<daemon>\n<cmd>transitioner</cmd>\n<output>/dev/null</output>\n"
              "<pid_file>trans</pid_file>\n</daemon>\n</daemons></boinc>\n")
    text = with_instances(config, {"transitioner": 2})
    assert "<output>/dev/null</output>" in text and "<pid_file>trans_mod2_1</pid_file>" in text
    assert with_instances(text, {}) == config


def test_a_file_without_daemons_is_unchanged():
    assert with_instances("<boinc><config/></boinc>\n", {"transitioner": 2}) == "<boinc><config/></boinc>\n"


def test_instance_names():
    assert instance_name("transitioner.pid", 2, 0) == "transitioner_mod2_0.pid"
    assert instance_name("logs.d/x", 3, 2) == "logs.d/x_mod3_2"
    assert instance_name("/dev/null", 2, 1) == "/dev/null"


# -- the counts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("counts, words", [
    ({"feeder": 2}, "feeder runs once"),
    ({"scheduler": 2}, "unknown daemon type 'scheduler'"),
    ({"transitioner": 0}, "from 1 to 32"),
    ({"transitioner": 33}, "from 1 to 32"),
    ({"transitioner": "2"}, "whole number"),
    ({"transitioner": 2.0}, "whole number"),
    ({"transitioner": True}, "whole number"),
    (["transitioner"], "a table"),
])
def test_bad_counts_are_refused_saying_why(counts, words):
    with pytest.raises(DaemonInstancesError, match=words):
        check_counts(counts)
    with pytest.raises(DaemonInstancesError):
        with_instances(CONFIG, counts)


def test_the_env_value_round_trips():
    counts = {"validator": 3, "transitioner": 2}
    assert to_env(counts) == '{"transitioner":2,"validator":3}'
    assert from_env(to_env(counts)) == counts and to_env({}) == "" and from_env("") == {}
    with pytest.raises(DaemonInstancesError, match="not JSON"):
        from_env("transitioner=2")
    with pytest.raises(DaemonInstancesError, match="feeder"):
        from_env('{"feeder":2}')


# -- the setting ------------------------------------------------------------------------------
def test_the_setting_is_checked_and_reaches_the_env():
    assert Settings(project="demo").daemon_instances == {}
    assert "DAEMON_INSTANCES" not in Settings(project="demo").env()  # a project with the default keeps its .env
    s = Settings(project="demo", daemon_instances={"validator": 2, "transitioner": 2})
    assert s.env()["DAEMON_INSTANCES"] == "'{\"transitioner\":2,\"validator\":2}'"  # literal for Compose
    with pytest.raises(InvalidInput, match="feeder") as exc:
        Settings(project="demo", daemon_instances={"feeder": 2})
    assert "[daemon_instances]" in exc.value.advice


def test_its_own_table_in_the_file_round_trips(tmp_path):
    s = Settings(project="demo", daemon_instances={"transitioner": 2})
    text = to_toml(s)
    assert tomllib.loads(text)["daemon_instances"] == {"transitioner": 2}
    assert "daemon_instances" not in tomllib.loads(text)["project"]
    (tmp_path / "boincserver.toml").write_text(text)
    assert load(tmp_path) == s
    assert "[daemon_instances]" not in to_toml(Settings(project="demo"))


def test_a_users_table_is_read_and_updated_in_place_keeping_comments(tmp_path):
    path = tmp_path / "boincserver.toml"
    path.write_text(to_toml(Settings(project="demo")) + "\n# more of them: faster validation\n"
                    "[daemon_instances]\ntransitioner = 2  # two\nvalidator = 3\n")
    s = load(tmp_path)
    assert s.daemon_instances == {"transitioner": 2, "validator": 3}
    before = path.read_text()
    save(tmp_path, s)
    assert path.read_text() == before
    save(tmp_path, s.with_changes(daemon_instances={"transitioner": 4}))
    text = path.read_text()
    assert "# more of them: faster validation" in text and "transitioner = 4" in text and "validator" not in text
    assert load(tmp_path).daemon_instances == {"transitioner": 4}
    save(tmp_path, load(tmp_path).with_changes(daemon_instances={}))
    assert load(tmp_path).daemon_instances == {}


@pytest.mark.parametrize("table, words", [
    ("[daemon_instances]\nfeeder = 2\n", "feeder"),
    ("[daemon_instances]\nsheduler = 2\n", "unknown daemon type"),
    ("[daemon_instances]\ntransitioner = 100\n", "from 1 to 32"),
])
def test_a_bad_table_is_refused_on_load(tmp_path, table, words):
    (tmp_path / "boincserver.toml").write_text(to_toml(Settings(project="demo")) + table)
    with pytest.raises(InvalidInput, match=words):
        load(tmp_path)


def test_in_the_project_table_it_is_unknown(tmp_path):
    (tmp_path / "boincserver.toml").write_text(to_toml(Settings(project="demo")).replace(
        "[project]\n", "[project]\ndaemon_instances = {transitioner = 2}\n"))
    with pytest.raises(ProjectError, match="unknown setting"):
        load(tmp_path)


# -- the containers ---------------------------------------------------------------------------
from test_container_setup import db, environ, given, machine, mounts, start, started  # noqa: E402,F401
from test_apps import helper, install  # noqa: E402,F401


def test_every_start_applies_the_instances_and_folds_them_back(mounts, environ, machine, db, given, capsys):
    from boincserver.container import setup
    started(mounts, environ)
    config = mounts.project / "config.xml"
    config.write_text(config.read_text().replace("  </daemons>", "    <daemon>\n      <cmd>transitioner -d 3 </cmd>\n"
                                                                 "    </daemon>\n  </daemons>"))
    original = config.read_text()
    capsys.readouterr()
    started(mounts, dict(environ, DAEMON_INSTANCES='{"transitioner":2}'))
    assert "config.xml's daemons ({\"transitioner\":2})" in capsys.readouterr().out
    assert [c for c in commands(config.read_text()) if "transitioner" in c] == [
        "transitioner -d 3 --mod 2 0", "transitioner -d 3 --mod 2 1"]
    started(mounts, dict(environ, DAEMON_INSTANCES='{"transitioner":2}'))
    assert "daemons" not in capsys.readouterr().out  # nothing new
    started(mounts, environ)
    assert "config.xml's daemons (one each)" in capsys.readouterr().out
    assert config.read_text() == original
    assert setup.tune(mounts, 500) == []


@pytest.mark.parametrize("raw, words", [("{transitioner: 2}", "not JSON"), ('{"feeder": 2}', "feeder runs once")])
def test_bad_instances_are_refused_before_anything_changes(mounts, environ, machine, db, given, raw, words):
    from boincserver.container import setup
    started(mounts, environ)
    before = {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()}
    code, err = start(mounts, dict(environ, DAEMON_INSTANCES=raw, URL_BASE="http://elsewhere.example.org"))
    assert code == setup.FAILED
    assert "DAEMON_INSTANCES" in err and words in err and "[daemon_instances] in boincserver.toml" in err
    assert {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()} == before


def test_a_new_app_gets_its_instances_and_a_new_version_keeps_them(helper, monkeypatch):
    root, _ = helper
    monkeypatch.setenv("DAEMON_INSTANCES", '{"assimilator":2,"validator":3}')
    code, got, err = install(root, "apps/up/1.02/x86_64-pc-linux-gnu", app="up")
    assert code == 0, err
    assert got["daemons_added"] == ["sample_trivial_validator --app up", "sample_assimilator --app up"]
    text = (root / "config.xml").read_text()
    assert len([c for c in commands(text) if c.startswith("sample_trivial_validator --app up --mod 3 ")]) == 3
    assert len([c for c in commands(text) if c.startswith("sample_assimilator --app up --mod 2 ")]) == 2
    assert "start" in (root / "calls.log").read_text()
    # a new version: the daemons are there (as instances), none added, config.xml as it was
    (root / "calls.log").unlink()
    code, got, err = install(root, "apps/up/1.03/x86_64-pc-linux-gnu", app="up")
    assert code == 0, err
    assert got["daemons_added"] == [] and (root / "config.xml").read_text() == text
    assert "bin/start" not in (root / "calls.log").read_text() and "start " not in (root / "calls.log").read_text()


def test_bad_instances_refuse_an_app_install_before_xadd(helper, monkeypatch):
    root, _ = helper
    monkeypatch.setenv("DAEMON_INSTANCES", "nonsense")
    before = (root / "config.xml").read_text()
    from boincserver.container import jobs as container_jobs
    code, _, err = install(root, "apps/up/1.02/x86_64-pc-linux-gnu", app="up")
    assert code == container_jobs.USER_MISTAKE and "DAEMON_INSTANCES" in err and "not JSON" in err
    assert not (root / "calls.log").exists() and (root / "config.xml").read_text() == before
    assert not (root / "apps/up/1.02/x86_64-pc-linux-gnu").exists()
    assert not (root / "project.xml.boincserver-old").exists()
