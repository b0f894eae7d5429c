"""The project on a real three-node Docker Swarm (tests/stack/swarm_cluster.py): the database
on node db, apache and the daemons on server-a or server-b, which share one folder (as NFS
would); images pushed to a registry and pulled by the nodes; a real BOINC client (Debian's
7.20) finishes jobs through a front on the host's loopback, which stands for the load
balancer over the server nodes' host-mode ports.

The tests run in order on one deployment: up, a job, a drain of apache's node (the stack comes
back on the other server node with nothing lost), down --volumes (nothing left).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from boincserver.render import SWARM_STORAGE_VOLUMES
from boincserver.settings import load, save

from .conftest import Stack, debian_client, free_port, run_cli
from .swarm_cluster import MANAGER, NODES, SERVERS, swarm_cluster  # noqa: F401 (a fixture)
from .test_client_e2e import wait_done



class Deployment(Stack):
    def __init__(self, root: Path, project: str, port: int, cluster):
        super().__init__(root, project, port)
        self.cluster = cluster
        self.stack = f"boincserver-{project}"

    def status(self) -> dict:
        return json.loads(run_cli("status", "--json", cwd=self.dir).stdout)

    def apache_node(self) -> str | None:
        rows = {r["service"]: r for r in self.status()["services"]}
        running = [t["node"] for t in rows["apache"]["tasks"] if t["state"].startswith("Running")]
        return running[0] if running else None


@pytest.fixture(scope="module")
def deployed(swarm_cluster, tmp_path_factory):  # noqa: F811
    cluster = swarm_cluster
    port = free_port()
    d = Deployment(tmp_path_factory.mktemp("swarm"), f"sw_{os.getpid()}", port, cluster)
    run_cli("init", d.dir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port,
            "--registry", f"{cluster.registry}/ci")
    save(d.dir, load(d.dir).with_changes(swarm_manager=cluster.manager, swarm_storage=cluster.shared_path,
                                         swarm_nodes=dict(cluster.engines)))
    # The load balancer in front of the server nodes' host-mode ports: one URL for volunteers.
    with cluster.front(port, port, nodes=SERVERS):
        try:
            d.up = json.loads(run_cli("up", "--swarm", "--json", cwd=d.dir).stdout)
            yield d
        finally:
            run_cli("down", "--swarm", "--volumes", "--yes", cwd=d.dir, check=False)


def test_up_places_the_database_and_the_server_on_their_nodes(deployed: Deployment):
    assert deployed.up["nodes"]["mysql"] == MANAGER and deployed.up["nodes"]["db-user"] == MANAGER
    assert deployed.up["nodes"]["apache"] in SERVERS and deployed.up["nodes"]["makeproject"] in SERVERS
    assert load(deployed.dir).deploy == "swarm"
    status = deployed.status()
    assert status["deploy"] == "swarm" and {n["hostname"] for n in status["nodes"]} == set(NODES)
    # The nodes pulled the images from the registry: the task images are the pushed references.
    images = {r["service"]: r["image"] for r in status["services"]}
    assert all(images[s].startswith(deployed.cluster.registry + "/ci/") for s in ("mysql", "apache"))
    # The project's files are in the shared folder, the database on db's own volume.
    assert (deployed.cluster.shared / "project" / ".boincserver" / "created.json").is_file()
    volumes = deployed.cluster.docker(MANAGER, "volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{deployed.stack}_mysql" in volumes and f"{deployed.stack}_project" not in volumes
    # The secret's value is in no service but the two jobs, and never in apache's environment.
    spec = json.loads(deployed.cluster.docker(MANAGER, "service", "inspect", f"{deployed.stack}_apache",
                                              "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}").stdout)
    assert not spec.get("Secrets") and not any("PASSWORD" in e for e in spec.get("Env", []))
    # The vault runs in a one-shot makeproject container on apache's node, with the stack's volumes.
    shown = {r["name"]: r for r in json.loads(run_cli("secrets", "show", "--json", cwd=deployed.dir).stdout)}
    assert shown["db"]["set"] and shown["code_sign"]["private_key"] == "on server"
    # exec and logs reach apache's task on its node (exec as the BOINC user, in PROJECT_ROOT).
    where = run_cli("exec", "apache", "sh", "-c", "hostname; id -un; pwd", cwd=deployed.dir).stdout.split()
    assert where == ["boincserver", "boincadm", "/home/boincadm/project"]
    assert run_cli("logs", "apache", "--tail", "20", cwd=deployed.dir).stdout.strip()
    # The home page answers through the front.
    import urllib.request
    with urllib.request.urlopen(f"{deployed.local}/{deployed.project}/", timeout=20) as resp:
        assert resp.status == 200


@pytest.fixture(scope="module")
def volunteer(deployed):
    with debian_client(deployed, "swarm") as client:
        yield client


def submit(d: Deployment, wu: str, text: str, tmp_path: Path) -> None:
    src = tmp_path / f"{wu}.txt"
    src.write_text(text)
    run_cli("create-work", "uppercase", src, "--wu-name", wu, "--max-error-results", "2", cwd=d.dir)


def output_of(d: Deployment, wu: str, tmp_path: Path) -> str:
    out = tmp_path / "out"
    run_cli("results", "--wu", wu, "--out", out, "--json", cwd=d.dir)
    return (out / wu / "out").read_text()


def test_a_real_client_finishes_a_job_on_the_swarm(deployed: Deployment, request, tmp_path):
    # app add and create-work run in the apache and makeproject services, on apache's node.
    run_cli("app", "add", "uppercase", "--example", "uppercase", cwd=deployed.dir)
    submit(deployed, "swarm_one", "Hello from the swarm\n", tmp_path)
    # Attached once there is work: a client that found none backs off its work requests for
    # minutes, which `update` does not cut short (387 s once, against 69 s).
    volunteer = request.getfixturevalue("volunteer")
    job = wait_done(deployed, volunteer, "swarm_one")
    assert job["state"] == "done", f"{job}\n{volunteer.log()[-3000:]}"
    assert output_of(deployed, "swarm_one", tmp_path) == "HELLO FROM THE SWARM\n"


def test_a_drained_server_node_loses_nothing(deployed: Deployment, volunteer, tmp_path):
    cluster = deployed.cluster
    before = deployed.apache_node()
    assert before in SERVERS
    other = next(n for n in SERVERS if n != before)
    submit(deployed, "swarm_two", "submitted before the drain\n", tmp_path)
    cluster.docker(MANAGER, "node", "update", "--availability", "drain", before)
    try:
        deadline = time.monotonic() + 300
        while deployed.apache_node() != other:
            assert time.monotonic() < deadline, json.dumps(deployed.status(), indent=1)
            time.sleep(3)
        # The job made before the drain is computed after it, through the same URL.
        job = wait_done(deployed, volunteer, "swarm_two")
        assert job["state"] == "done", f"{job}\n{volunteer.log()[-3000:]}"
        assert output_of(deployed, "swarm_two", tmp_path) == "SUBMITTED BEFORE THE DRAIN\n"
        # And the one finished before it is still there.
        assert output_of(deployed, "swarm_one", tmp_path / "again") == "HELLO FROM THE SWARM\n"
        report = json.loads(run_cli("results", "--wu", "swarm_one", "--wu", "swarm_two", "--json",
                                    cwd=deployed.dir).stdout)
        assert report["summary"] == {"done": 2, "pending": 0, "failed": 0}, report
    finally:
        cluster.docker(MANAGER, "node", "update", "--availability", "active", before)


def test_down_removes_everything_it_made(deployed: Deployment):
    cluster = deployed.cluster
    done = json.loads(run_cli("down", "--swarm", "--volumes", "--yes", "--json", cwd=deployed.dir).stdout)
    assert done["secrets"] == [f"{deployed.stack}_db_password"] and not done["left"]
    for what in ("service", "network", "secret"):
        listed = cluster.docker(MANAGER, what, "ls", "--format", "{{.Name}}").stdout.split()
        assert not [n for n in listed if n.startswith(deployed.stack)], (what, listed)
    for node in NODES:
        volumes = cluster.docker(node, "volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert not [v for v in volumes if v.startswith(deployed.stack)], (node, volumes)
    assert not [p for sub in SWARM_STORAGE_VOLUMES for p in (cluster.shared / sub).iterdir()]
