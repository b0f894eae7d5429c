"""The test Swarm itself (swarm_cluster.py): three Ready nodes with their labels, an image pushed
from the host and pulled inside the nodes, a 2-replica dnsrr service on an overlay network with
host-mode ports behind the front (and after a drain), and the shared folder of the server nodes.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from boincserver import pins

from .conftest import free_port
from .swarm_cluster import MANAGER, NODES, SERVERS, SHARED_SUBFOLDERS, SwarmCluster, node_labels
from .swarm_cluster import swarm_cluster  # noqa: F401  (the fixture)

# A one-line TCP server in the base OS image's perl (perl-base is essential in Debian): it
# answers every connection with the name of the node its task runs on.
SERVE_NODE = ("$SIG{TERM} = sub { exit 0 }; "
              "my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die $!; "
              "while (my $c = $s->accept) { print $c \"$ENV{NODE}\\n\"; close $c }")


@pytest.fixture(scope="module")
def base_ref(swarm_cluster: SwarmCluster):  # noqa: F811
    """The pinned base OS image, pushed from the host to the cluster's registry."""
    ref = f"{swarm_cluster.registry}/swarm-test/base:{pins.BASE_OS_IMAGE.split(':', 1)[1]}"
    subprocess.run(["docker", "tag", pins.BASE_OS_IMAGE, ref], check=True, capture_output=True)
    try:
        done = subprocess.run(["docker", "push", ref], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        yield ref
    finally:
        subprocess.run(["docker", "image", "rm", ref], capture_output=True)  # the tag only


def _ask(host: str, port: int, timeout: float = 5) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while chunk := s.recv(1024):
            data += chunk
        return data.decode().strip()


def _wait_for(what: str, probe, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def test_three_ready_nodes_with_labels(swarm_cluster: SwarmCluster):  # noqa: F811
    c = swarm_cluster
    assert set(c.engines) == set(c.node_ips) == set(NODES)
    listing = c.docker(MANAGER, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").stdout
    rows = {line.split()[0]: line.split()[1:] for line in listing.splitlines()}
    assert set(rows) == set(NODES), listing
    assert all(r[0] == "Ready" for r in rows.values()), listing
    assert rows[MANAGER][1:] == ["Leader"] and all(len(rows[n]) == 1 for n in SERVERS), listing
    assert node_labels(c, MANAGER) == {"boincserver.db": "true"}
    for node in SERVERS:
        assert node_labels(c, node) == {"boincserver.server": "true"}
    # Each engine is its own node: its hostname, and its Swarm role.
    for node in NODES:
        info = c.docker(node, "info", "--format", "{{.Name}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
        assert info.stdout.split() == [node, "active", "true" if node == MANAGER else "false"], info.stdout


def test_image_pushed_on_the_host_pulls_inside_a_node(swarm_cluster: SwarmCluster, base_ref):  # noqa: F811
    c = swarm_cluster
    c.docker(MANAGER, "pull", base_ref)
    out = c.docker(MANAGER, "run", "--rm", base_ref, "cat", "/etc/debian_version").stdout
    assert out.strip().startswith("12."), out


def test_dnsrr_service_host_ports_front_and_drain(swarm_cluster: SwarmCluster, base_ref):  # noqa: F811
    c = swarm_cluster
    port = free_port()
    c.docker(MANAGER, "network", "create", "-d", "overlay", "--attachable", "smoke-net")
    c.docker(MANAGER, "service", "create", "--detach", "--name", "hello", "--network", "smoke-net",
             "--endpoint-mode", "dnsrr", "--replicas", "2", "--stop-grace-period", "2s",
             "--constraint", "node.labels.boincserver.server==true",
             "--publish", f"mode=host,target=80,published={port}", "--env", "NODE={{.Node.Hostname}}",
             base_ref, "perl", "-MIO::Socket::INET", "-e", SERVE_NODE)
    try:
        # One task on each server node, each answering on its node's host-mode port.
        for node in SERVERS:
            assert _wait_for(f"{node}:{port} answers", lambda n=node: _ask(c.node_ips[n], port) == n)
        tasks = c.docker(MANAGER, "service", "ps", "hello", "--filter", "desired-state=running",
                         "--format", "{{.Node}} {{.CurrentState}}").stdout
        assert sorted(line.split()[0] for line in tasks.splitlines()) == sorted(SERVERS), tasks
        with pytest.raises(OSError):
            _ask(c.node_ips[MANAGER], port, timeout=2)  # no task on the DB node

        # The overlay (VXLAN between nodes): the task on server-a resolves both tasks (dnsrr)
        # and reaches the one on server-b.
        task_a = c.docker("server-a", "ps", "-q", "--filter",
                          "label=com.docker.swarm.service.name=hello").stdout.strip()
        ips = c.docker("server-a", "exec", task_a, "getent", "ahostsv4", "tasks.hello").stdout
        task_ips = sorted({line.split()[0] for line in ips.splitlines()})
        assert len(task_ips) == 2, ips
        answers = {c.docker("server-a", "exec", task_a, "bash", "-c",
                            f"exec 3<>/dev/tcp/{ip}/80 && cat <&3").stdout.strip() for ip in task_ips}
        assert answers == set(SERVERS)

        # The front: the first node that accepts (db refuses, server-a answers) ...
        with c.front(0, port) as front:
            assert _ask("127.0.0.1", front) == "server-a"
            # ... and after a drain of server-a, server-b (its task stays; no second task fits
            # server-b, whose host port is taken).
            c.docker(MANAGER, "node", "update", "--availability", "drain", "server-a")
            try:
                _wait_for("the front answers from server-b", lambda: _ask("127.0.0.1", front) == "server-b")
                with pytest.raises(OSError):
                    _ask(c.node_ips["server-a"], port, timeout=2)
                assert {_ask("127.0.0.1", front) for _ in range(5)} == {"server-b"}
            finally:
                c.docker(MANAGER, "node", "update", "--availability", "active", "server-a")
    finally:
        c.docker(MANAGER, "service", "rm", "hello", check=False)


def test_shared_folder_is_the_same_on_both_server_nodes(swarm_cluster: SwarmCluster, base_ref):  # noqa: F811
    c = swarm_cluster
    mount = f"{c.shared_path}:/s"
    modes = c.docker("server-b", "run", "--rm", "-v", mount, base_ref, "stat", "-c", "%n %a %u",
                     *(f"/s/{sub}" for sub in SHARED_SUBFOLDERS)).stdout.split("\n")
    assert [m for m in modes if m] == [f"/s/{sub} 755 0" for sub in SHARED_SUBFOLDERS]
    c.docker("server-a", "run", "--rm", "-v", mount, base_ref, "sh", "-c", "echo written-on-a > /s/results/probe")
    out = c.docker("server-b", "run", "--rm", "-v", mount, base_ref, "cat", "/s/results/probe").stdout
    assert out == "written-on-a\n"
    assert (c.shared / "results" / "probe").read_text() == "written-on-a\n"
    # The DB node has no such folder.
    assert c.node_sh(MANAGER, f"test -e {c.shared_path}", check=False).returncode != 0
