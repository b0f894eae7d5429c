"""The project on Docker Swarm, without Docker: stack.yaml as rendered, the swarm_* settings,
and what `up --swarm`, `down --swarm` and `status` ask of a recording manager.

The real multi-node Swarm is tests/stack/test_swarm.py's."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from boincserver import backup, context, paths, project, render, secrets, swarm, upgrade
from boincserver.container import common, setup
from boincserver.container import secrets as container_secrets
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load, save

from fakes import RecordingEngine
from test_use_cases import make_project

REGISTRY = "127.0.0.1:5000/ci"


def stack_of(settings: Settings) -> dict:
    return yaml.safe_load(render.render_all(settings)[paths.STACK_FILE])


# -- stack.yaml ----------------------------------------------------------------------------
def test_stack_yaml_is_the_compose_template_for_swarm():
    stack = stack_of(Settings(project="demo"))
    assert stack["version"] == "3.9" and "name" not in stack  # stack deploy refuses both otherwise
    assert set(stack["services"]) == {"mysql", "db-user", "makeproject", "apache"}
    for name, svc in stack["services"].items():
        assert "build" not in svc and "depends_on" not in svc and "restart" not in svc, name
        # No IPVS here (and none needed): no VIP, no routing mesh.
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name
        assert svc["image"].startswith("${") and svc["image"].endswith("}"), name
    mysql, apache = stack["services"]["mysql"], stack["services"]["apache"]
    assert "ports" not in mysql  # Swarm would publish it on every address of every node
    assert mysql["deploy"]["placement"]["constraints"] == ["node.labels.boincserver.db == true"]
    assert apache["deploy"]["placement"]["constraints"] == ["node.labels.boincserver.server == true"]
    assert apache["ports"] == [{"target": 80, "published": "${HTTP_PORT:-8080}", "mode": "host"}]
    assert apache["deploy"]["replicas"] == "${APACHE_REPLICAS:-1}"
    assert apache["hostname"] == "boincserver"


def test_on_swarm_the_database_password_is_a_secret_only_the_jobs_get():
    stack = stack_of(Settings(project="demo"))
    services = stack["services"]
    assert stack["secrets"] == {"db_password": {"external": True, "name": "boincserver-demo_db_password"}}
    for job, label in (("db-user", "db"), ("makeproject", "server")):
        svc = services[job]
        assert svc["secrets"] == [{"source": "db_password", "target": "db_password", "mode": 0o400}]
        assert svc["deploy"]["restart_policy"] == {"condition": "on-failure", "delay": "5s", "max_attempts": 5}
        assert svc["deploy"]["placement"]["constraints"] == [f"node.labels.boincserver.{label} == true"]
    assert "secrets" not in services["apache"] and "secrets" not in services["mysql"]
    assert services["db-user"]["volumes"] == ["mysql-socket:/run/mysqld"]
    assert services["db-user"]["command"] == ["boincserver-project-setup", "db-user"]
    # The socket is on the database's node: makeproject, on a server node, does not mount it.
    assert not any("mysql-socket" in v for v in services["makeproject"]["volumes"])
    assert services["makeproject"]["environment"]["DB_ADMIN"] == "external"
    # The private keys stay hidden from apache exactly as with Compose.
    compose = yaml.safe_load(render.render_all(Settings(project="demo"))[paths.COMPOSE_FILE])
    assert services["apache"]["volumes"] == compose["services"]["apache"]["volumes"]


def test_the_compose_render_has_no_trace_of_swarm():
    text = render.render_all(Settings(project="demo"))[paths.COMPOSE_FILE]
    for word in ("deploy:", "dnsrr", "db-user", "DB_PASSWORD_FILE", "\nsecrets:", "version:"):
        assert word not in text, word
    compose = yaml.safe_load(text)
    assert compose["name"] == "boincserver-demo" and compose["services"]["mysql"]["ports"] == ["127.0.0.1::3306"]


def test_swarm_storage_binds_the_server_volumes_into_the_shared_folder():
    stack = stack_of(Settings(project="demo", swarm_storage="/srv/boinc"))
    for volume in swarm.STORAGE_VOLUMES:
        assert stack["volumes"][volume] == {"driver": "local", "driver_opts": {
            "type": "none", "o": "bind", "device": f"/srv/boinc/{volume}"}}
    assert stack["volumes"]["mysql"] is None  # the database stays on its node's own volume
    assert all(stack_of(Settings(project="demo"))["volumes"][v] is None for v in swarm.STORAGE_VOLUMES)


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("values, word", [
    ({"swarm_manager": "http://manager"}, "swarm_manager"),
    ({"swarm_manager": "ssh://a b"}, "swarm_manager"),
    ({"swarm_storage": "relative/path"}, "swarm_storage"),
    ({"swarm_storage": "/srv/../etc"}, "swarm_storage"),
    ({"swarm_storage": "/srv/x\n  evil: 1"}, "swarm_storage"),
    ({"swarm_nodes": {"db": "db.example.org"}}, "swarm_nodes.db"),
    ({"swarm_nodes": {"-bad": "ssh://db"}}, "swarm_nodes"),
    ({"deploy": "kubernetes"}, "deploy"),
])
def test_bad_swarm_settings_are_refused_by_name(values, word):
    with pytest.raises(InvalidInput, match=word.replace(".", r"\.")):
        Settings(project="demo", **values)


def test_swarm_settings_round_trip_through_the_settings_file(tmp_path):
    project = make_project(tmp_path)
    s = project.settings.with_changes(deploy="swarm", swarm_manager="ssh://admin@manager",
                                      swarm_storage="/srv/boinc", swarm_nodes={"db": "ssh://admin@db"})
    save(project.dir, s)
    assert load(project.dir) == s


# -- up --swarm ----------------------------------------------------------------------------
@pytest.fixture
def on_swarm(tmp_path) -> context.Project:
    return make_project(tmp_path, registry=REGISTRY, swarm_storage="/srv/boinc")


def test_up_pushes_makes_the_secret_then_deploys_in_order(on_swarm):
    engine: RecordingEngine = on_swarm.engine
    done = swarm.up(on_swarm, context.Silent())
    assert done.nodes == {"mysql": "db", "db-user": "db", "makeproject": "server-a", "apache": "server-a"}
    assert load(on_swarm.dir).deploy == "swarm"
    pushes = engine.named("push_image")
    assert len(pushes) == 3 and all(c.args["reference"].startswith(REGISTRY + "/") for c in pushes)
    # The password went through stdin once: no command line, no deploy environment holds it.
    (created,) = engine.named("secret_create")
    password = created.args["value"]
    assert created.args["name"] == "boincserver-demo_db_password" and len(password) == 32
    deploys = engine.named("stack_deploy")
    assert all(password.decode() not in json.dumps(c.args["env"]) for c in deploys)
    assert engine.index(pushes[-1]) < engine.index(created) < engine.index(deploys[0])
    phases = [(c.args["env"]["DB_USER_REPLICAS"], c.args["env"]["MAKEPROJECT_REPLICAS"],
               c.args["env"]["APACHE_REPLICAS"]) for c in deploys]
    assert phases == [("0", "0", "0"), ("1", "0", "0"), ("1", "1", "0"), ("1", "1", "1")]
    env = deploys[-1].args["env"]
    assert env["APACHE_IMAGE"] == pushes[0].args["reference"] or env["APACHE_IMAGE"].startswith(REGISTRY)
    assert env["URL_BASE"] == on_swarm.settings.url_base and deploys[-1].args["name"] == "boincserver-demo"
    assert Path(deploys[0].args["compose_file"]) == on_swarm.dir / paths.STACK_FILE


def test_a_second_up_keeps_the_secret_and_runs_the_jobs_again(on_swarm):
    engine: RecordingEngine = on_swarm.engine
    swarm.up(on_swarm, context.Silent())
    swarm.up(on_swarm, context.Silent())
    assert len(engine.named("secret_create")) == 1
    assert len(engine.tasks["boincserver-demo_makeproject"]) == 2


def test_values_dotenv_quotes_reach_the_stack_bare(on_swarm):
    on_swarm.settings = on_swarm.settings.with_changes(long_name="It's ours")
    swarm.up(on_swarm, context.Silent())
    env = on_swarm.engine.named("stack_deploy")[-1].args["env"]
    assert json.loads(env["PROJECT_LONG_NAME"]) == "It's ours"


def test_up_without_a_registry_is_refused_before_anything(tmp_path):
    project = make_project(tmp_path)
    with pytest.raises(InvalidInput, match="registry") as caught:
        swarm.up(project, context.Silent())
    assert "boincserver.toml" in caught.value.advice
    assert not project.engine.named("stack_deploy", "build_image", "secret_create")
    assert load(project.dir).deploy == "compose"


def test_up_refuses_offline_signing_rather_than_make_a_key_on_a_node(tmp_path):
    keys = tmp_path / "keys"
    project = make_project(tmp_path, registry=REGISTRY, offline_signing_keys=str(keys))
    with pytest.raises(InvalidInput, match="offline code signing is not available on Swarm"):
        swarm.up(project, context.Silent())
    assert not project.engine.named("stack_deploy", "build_image", "secret_create")


def test_up_refuses_while_the_compose_project_runs_here(on_swarm):
    on_swarm.engine.running.add("apache")
    with pytest.raises(ProjectError, match="runs here with Compose") as caught:
        swarm.up(on_swarm, context.Silent())
    assert "boincserver down" in caught.value.advice
    assert not on_swarm.engine.named("stack_deploy", "secret_create")


def test_up_refuses_https_the_load_balancer_should_end(on_swarm):
    with pytest.raises(InvalidInput, match="load balancer") as caught:
        swarm.up(on_swarm, context.Silent(), url_base="https://boinc.example.org",
                 changes={"acme_email": "ops@example.org"})
    assert "--tls proxy" in caught.value.advice
    swarm.up(on_swarm, context.Silent(), url_base="https://boinc.example.org", changes={"tls": "proxy"})


@pytest.mark.parametrize("swarm_state, word", [
    ({"LocalNodeState": "inactive", "ControlAvailable": False}, "not part of a Docker Swarm"),
    ({"LocalNodeState": "active", "ControlAvailable": False}, "worker, not a manager"),
])
def test_up_refuses_an_engine_that_is_no_manager(on_swarm, swarm_state, word):
    on_swarm.engine.swarm = swarm_state
    with pytest.raises(ProjectError, match=word):
        swarm.up(on_swarm, context.Silent())
    assert not on_swarm.engine.named("stack_deploy", "secret_create")


def test_up_refuses_without_a_node_labelled_for_the_database(on_swarm):
    on_swarm.engine.nodes[0]["labels"] = {}
    with pytest.raises(ProjectError, match="boincserver.db=true") as caught:
        swarm.up(on_swarm, context.Silent())
    assert "docker node update --label-add boincserver.db=true" in caught.value.advice


def test_a_drained_server_node_does_not_count(on_swarm):
    on_swarm.engine.nodes[1]["availability"] = "drain"
    with pytest.raises(ProjectError, match="boincserver.server=true"):
        swarm.up(on_swarm, context.Silent())


def test_a_failed_job_ends_up_with_its_last_lines(on_swarm):
    on_swarm.engine.task_outcome["makeproject"] = "Failed"
    lines = []

    class Lines(context.Silent):
        def line(self, text):
            lines.append(text)
    with pytest.raises(ProjectError, match="makeproject job failed: task: non-zero exit"):
        swarm.up(on_swarm, Lines())
    assert "[makeproject] error: make_project failed" in lines
    assert on_swarm.engine.services["boincserver-demo_apache"]["replicas"] == 0


def test_a_task_no_node_can_take_is_explained(on_swarm, monkeypatch):
    monkeypatch.setattr(swarm, "PENDING_GRACE", 0.0)
    on_swarm.engine.task_outcome["apache"] = "Pending"
    with pytest.raises(ProjectError, match="no Swarm node can run boincserver-demo_apache: no suitable node"):
        swarm.up(on_swarm, context.Silent())


def test_up_through_a_manager_elsewhere(tmp_path):
    project = make_project(tmp_path, registry=REGISTRY, swarm_manager="ssh://admin@manager")
    done = swarm.up(project, context.Silent())
    manager = project.engine.hosts["ssh://admin@manager"]
    assert done.nodes["apache"] == "server-a" and manager.services and not project.engine.services
    assert project.engine.named("push_image")  # built and pushed here


# -- down and status -------------------------------------------------------------------------
def test_down_keeps_data_and_the_secret_without_volumes(on_swarm):
    swarm.up(on_swarm, context.Silent())
    done = swarm.down(on_swarm, context.Silent(), volumes=False)
    assert done == {"stack": "boincserver-demo", "secrets": [], "volumes": {}, "left": {}}
    assert not on_swarm.engine.services and "boincserver-demo_db_password" in on_swarm.engine.secrets


def test_down_with_volumes_empties_the_shared_folder_once_and_removes_every_volume(tmp_path):
    project = make_project(tmp_path, registry=REGISTRY, swarm_storage="/srv/boinc",
                           swarm_nodes={"db": "unix:///n/db.sock", "server-a": "unix:///n/a.sock"})
    swarm.up(project, context.Silent())
    engine: RecordingEngine = project.engine
    names = swarm.volumes_of(project.settings)
    for host in ("unix:///n/db.sock", "unix:///n/a.sock"):
        engine.on_host(host).node_volumes.update(names)
    engine.nodes.append({"id": "n3", "hostname": "server-b", "labels": {"boincserver.server": "true"},
                         "state": "ready", "availability": "active", "address": "10.0.0.4"})
    engine.images[engine.services["boincserver-demo_apache"]["image"]] = {}
    done = swarm.down(project, context.Silent(), volumes=True)
    assert done["secrets"] == ["boincserver-demo_db_password"] and not engine.secrets
    assert done["volumes"] == {"db": names, "server-a": names}
    assert done["left"] == {"server-b": names}
    cleared = [c for c in engine.named("run") if "find /v -mindepth 1 -delete" in c.text]
    assert sorted(c.args["volumes"][0][0] for c in cleared) == sorted(
        f"boincserver-demo_{v}" for v in swarm.STORAGE_VOLUMES)
    assert all(not engine.hosts[h].node_volumes for h in engine.hosts)


def test_status_lists_each_service_with_its_node(on_swarm):
    swarm.up(on_swarm, context.Silent())
    data = swarm.status(on_swarm)
    rows = {r["service"]: r for r in data["services"]}
    assert rows["apache"]["tasks"] == [{"node": "server-a", "state": "Running 1 second ago", "error": ""}]
    assert [n["roles"] for n in data["nodes"]] == [["db"], ["server"]]
    assert data["deploy"] == "swarm"


def test_a_swarm_project_refuses_compose_commands_clearly(on_swarm, tmp_path):
    swarm.up(on_swarm, context.Silent())
    reopened = context.open_project(on_swarm.dir, lambda d, name: RecordingEngine())
    assert reopened.engine.stack_binding == {"stack": "boincserver-demo", "manager": None, "nodes": {}}
    with pytest.raises(ProjectError, match="deployed on Docker Swarm") as caught:
        project.down(reopened, context.Silent(), volumes=False)  # Compose's own commands
    assert "down --swarm" in caught.value.advice
    reopened.engine.calls.clear()
    for use_case in (lambda: backup.backup(reopened, context.Silent(), tmp_path / "b.backup", "a passphrase"),
                     lambda: backup.restore(reopened, context.Silent(), on_swarm.dir / "boincserver.toml", "x" * 8),
                     lambda: upgrade.upgrade(reopened, context.Silent(), lambda: "a passphrase"),
                     lambda: secrets.rotate(reopened, context.Silent(), ["ops"]),
                     lambda: secrets.rotate_code_sign(reopened, context.Silent()),
                     lambda: secrets.export_private_key(reopened, context.Silent(), tmp_path / "keys"),
                     lambda: secrets.restore(reopened, context.Silent(), on_swarm.dir / "boincserver.toml", "x" * 8)):
        with pytest.raises(ProjectError, match="deployed on Docker Swarm"):
            use_case()
    assert not (tmp_path / "b.backup").exists()
    assert not [c for c in reopened.engine.calls if c.name not in ("check_engine", "check_compose")]


# -- the containers' side ----------------------------------------------------------------------
def test_the_swarm_secret_is_read_from_db_password_file(tmp_path):
    secret = tmp_path / "db_password"
    assert common.swarm_db_password({}) is None
    with pytest.raises(common.Refused, match="cannot be read"):
        common.swarm_db_password({"DB_PASSWORD_FILE": str(secret)})
    secret.write_text("\n")
    with pytest.raises(common.Refused, match="is empty"):
        common.swarm_db_password({"DB_PASSWORD_FILE": str(secret)})
    secret.write_text("s3cret\n")
    assert common.swarm_db_password({"DB_PASSWORD_FILE": str(secret)}) == "s3cret"


def test_db_user_takes_the_swarm_secret_on_the_database_node(tmp_path, monkeypatch):
    secret = tmp_path / "db_password"
    secret.write_text("from-swarm\n")
    made = []
    monkeypatch.setattr(common, "connect_as_root", lambda socket: "conn")
    monkeypatch.setattr(common, "ensure_db_user", lambda conn, db, user, pw: made.append((db, user, pw)))
    mounts = common.Mounts(secrets=tmp_path / "no-secrets-volume")
    out = container_secrets.db_user(mounts, {"PROJECT": "demo", "BOINC_USER": "boincadm",
                                             "DB_PASSWORD_FILE": str(secret)})
    assert made == [("demo", "boincadm", "from-swarm")] and out["database"] == "demo"


def test_setup_main_reports_an_unreadable_secret(tmp_path):
    err = io.StringIO()
    code = setup.main(["db-user"], mounts=common.Mounts(secrets=tmp_path), err=err, out=io.BytesIO(),
                      environ={"PROJECT": "demo", "BOINC_USER": "boincadm", "DB_PASSWORD_FILE": str(tmp_path / "x")})
    assert code == setup.FAILED and "Swarm secret cannot be read" in err.getvalue()


def test_required_values_messages_survive_the_stack_loader():
    """Docker's stack loader splits `${VAR:?message}` at a `-` in the message (read as
    `${VAR-default}`): the image became "-swarm sets it)" once."""
    import re
    text = render.render_all(Settings(project="demo"))[paths.STACK_FILE]
    messages = re.findall(r"\$\{[A-Z_]+:\?([^}]*)\}", text)
    assert messages and not [m for m in messages if "-" in m]
