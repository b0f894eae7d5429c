"""A real multi-node Docker Swarm for the stack tests: three Docker-in-Docker nodes on a bridge.

Nodes (node name = hostname = Swarm node name):
  db         the Swarm manager, label boincserver.db=true
  server-a   a worker, label boincserver.server=true, the shared folder at SHARED_PATH
  server-b   a worker, label boincserver.server=true, the same shared folder at SHARED_PATH

Each node is a container of the image in tests/stack/swarm_node/ (the pinned base OS image +
Debian's docker.io) on a user-defined bridge of its own. Its dockerd listens on a unix socket
in a host folder bound into the node, so the host reaches every engine with
DOCKER_HOST=unix://<folder>/docker.sock. /var/lib/docker is a docker volume per node (overlay2
cannot sit on the node's own overlayfs).

Images reach the nodes through a registry (Debian's docker-registry) listening on the bridge's
gateway; the host pushes to 127.0.0.1:PORT (a forwarder in this process; Docker uses plain HTTP
for 127.0.0.0/8 without configuration) and every node runs socat on its own 127.0.0.1:PORT to
the gateway, so one reference, 127.0.0.1:PORT/..., is valid on the host and in every node.

Facts of a host without IPVS (no VIP, no routing mesh): services use `--endpoint-mode dnsrr`
and publish `mode=host`; `SwarmCluster.front` models the load balancer in front of host-mode
ports. `--privileged` is used where it works; where runc cannot apply every capability (a
host whose bounding set lacks one), the node gets every capability but CAP_SYS_RESOURCE, no
seccomp/AppArmor profile, unmasked /proc and /sys paths, and the host's cgroup v1 tree.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from boincserver.container.metrics import pid_alive
from boincserver.render import SWARM_STORAGE_VOLUMES

from .conftest import free_port, image_of_folder
from .test_registry import _ensure_registry_installed, serve_registry

NODE_DIR = Path(__file__).parent / "swarm_node"
NODE_IMAGE_NAME = "boincserver-test/swarm-node:20.10"
MANAGER = "db"
SERVERS = ("server-a", "server-b")
NODES = (MANAGER, *SERVERS)
LABELS = {"db": "boincserver.db", "server-a": "boincserver.server", "server-b": "boincserver.server"}
SHARED_PATH = "/srv/boincserver"
SHARED_SUBFOLDERS = SWARM_STORAGE_VOLUMES  # what a project on Swarm binds into the shared folder
# Docker objects of a cluster carry this label with the pid of the session that made them;
# leftovers of a dead session are removed at the next start.
OWNER_LABEL = "boincserver-test.swarm-pid"
TMP = "/tmp"  # short paths: a unix socket path has at most 108 bytes

# Messages of a node that cannot start for a reason of the machine, not of our code.
ENVIRONMENT_LIMITS = ("unable to apply caps", "operation not permitted", "error initializing network controller",
                      "failed to mount overlay", "driver not supported", "devices cgroup isn't mounted",
                      "cgroup mountpoint does not exist", "iptables failed")
CAPS_FLAGS = ("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
              "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw")


def _host_docker(*args: str, check: bool = True, input: str | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, input=input, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


class Forwarder:
    """A TCP forwarder in threads: listens on (host, port) and hands each connection to the first
    of `targets` that accepts it, tried in order for every connection."""

    def __init__(self, host: str, port: int, targets: list[tuple[str, int]], connect_timeout: float = 2.0):
        self.targets = list(targets)
        self.connect_timeout = connect_timeout
        self._listener = socket.create_server((host, port))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._open.add(s)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream = None
        for address in self.targets:
            try:
                upstream = socket.create_connection(address, timeout=self.connect_timeout)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        for s in (client, upstream):
            s.close()
            with self._lock:
                self._open.discard(s)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() on Linux
        self._listener.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()


@dataclass
class SwarmCluster:
    manager: str              # DOCKER_HOST of the manager's engine
    engines: dict[str, str]   # node name -> DOCKER_HOST of its engine
    node_ips: dict[str, str]  # node name -> node container IP on the test bridge
    registry: str             # "127.0.0.1:PORT", valid on the host and inside every node
    shared: Path              # host folder bound at shared_path in every server node
    shared_path: str = SHARED_PATH
    containers: dict[str, str] = field(default_factory=dict)  # node name -> its container on the host
    network: str = ""         # the test bridge (host engine)

    def docker(self, node: str, *args: str, check: bool = True, input: str | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
        """The docker CLI against `node`'s engine (text); AssertionError with the output on failure."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_HOST")}
        done = subprocess.run(["docker", *args], capture_output=True, text=True, input=input, timeout=timeout,
                              env={**env, "DOCKER_HOST": self.engines[node]})
        if check and done.returncode != 0:
            raise AssertionError(f"[{node}] docker {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def node_sh(self, node: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """A shell script in the node container itself (not in a container on its engine)."""
        return _host_docker("exec", self.containers[node], "sh", "-c", script, check=check)

    @contextlib.contextmanager
    def front(self, port: int, target_port: int, nodes: tuple[str, ...] | None = None) -> Iterator[int]:
        """A TCP front on the host's 127.0.0.1:`port` (0: any free port; yields the port): each
        connection goes to the first node (in `nodes` order, all nodes by default) that accepts
        on `target_port`; models a load balancer with health checks over host-mode ports."""
        targets = [(self.node_ips[n], target_port) for n in (nodes or tuple(self.node_ips))]
        fwd = Forwarder("127.0.0.1", port, targets, connect_timeout=1.0)
        try:
            yield fwd.port
        finally:
            fwd.close()


# -- checks ------------------------------------------------------------------------------------

def kernel_lacks_vxlan() -> bool:
    """True when /proc/config.gz says CONFIG_VXLAN is off (overlay networks need it)."""
    config = Path("/proc/config.gz")
    if not config.exists():
        return False  # cannot tell; the overlay test will say
    with gzip.open(config, "rt") as f:
        text = f.read()
    return "CONFIG_VXLAN=y" not in text and "CONFIG_VXLAN=m" not in text


def node_image() -> str:
    return image_of_folder(NODE_DIR, NODE_IMAGE_NAME)


def remove_leftovers(image: str) -> None:
    """Containers, volumes and networks of clusters whose session died (killed mid-test)."""
    for kind, fmt in (("ps", '{{.ID}} {{.Label "%s"}}'), ("volume ls", '{{.Name}} {{.Label "%s"}}'),
                      ("network ls", '{{.ID}} {{.Label "%s"}}')):
        listing = _host_docker(*kind.split(), *(["-a"] if kind == "ps" else []), "--filter",
                               f"label={OWNER_LABEL}", "--format", fmt % OWNER_LABEL, check=False).stdout
        dead = [ident for ident, _, pid in (line.partition(" ") for line in listing.splitlines())
                if pid.isdigit() and not pid_alive(int(pid))]
        if dead:
            rm = {"ps": ["rm", "-f", "-v"], "volume ls": ["volume", "rm", "-f"], "network ls": ["network", "rm"]}[kind]
            _host_docker(*rm, *dead, check=False)
    # Host folders (and a registry still serving one) of dead sessions: the file "owner" holds
    # the session's pid and the registry's.
    for root in Path(TMP).glob("bs-swarm-*"):
        try:
            session, registry = (int(x) for x in (root / "owner").read_text().split())
        except (OSError, ValueError):
            continue
        if pid_alive(session):
            continue
        with contextlib.suppress(OSError):
            if str(root) in Path(f"/proc/{registry}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(registry, signal.SIGKILL)
        _rmtree(root, image)


def _node_failure(node: str, container: str, what: str) -> None:
    """Skip (an environment limit, with the log's tail) or fail (anything else, the whole log)."""
    log = _host_docker("logs", "--tail", "200", container, check=False)
    text = f"{what}\n{log.stdout}{log.stderr}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    known = [ln for ln in lines if any(m in ln.lower() for m in ENVIRONMENT_LIMITS)]
    if known:
        pytest.skip(f"swarm node {node} cannot start here (environment limit): {' | '.join(known[-3:])[:500]}")
    raise AssertionError(f"swarm node {node} did not start: {what}\n{text[-6000:]}")


def _privileged_works(image: str) -> bool:
    done = _host_docker("run", "--rm", "--privileged", "--entrypoint", "true", image, check=False, timeout=120)
    return done.returncode == 0


# -- the registry -------------------------------------------------------------------------------

@contextlib.contextmanager
def _registry(folder: Path, listen_ip: str, port: int) -> Iterator[str]:
    """Debian's docker-registry on listen_ip:port (storage in `folder`), and a forwarder on the
    host's 127.0.0.1:port to it; yields "127.0.0.1:port"."""
    with serve_registry(folder, listen_ip, port) as (_, proc), contextlib.ExitStack() as stack:
        fwd = Forwarder("127.0.0.1", port, [(listen_ip, port)])
        stack.callback(fwd.close)
        address = f"127.0.0.1:{port}"
        (folder.parent / "owner").write_text(f"{os.getpid()} {proc.pid}\n")
        yield address


# -- the cluster --------------------------------------------------------------------------------

def _rmtree(root: Path, image: str) -> None:
    """Remove the cluster's host folder; files made by root inside nodes go through a container
    when this process cannot remove them."""
    try:
        shutil.rmtree(root)
    except PermissionError:
        _host_docker("run", "--rm", "-v", f"{root}:/x", "--entrypoint", "sh", image, "-c",
                     "rm -rf /x/* /x/.[!.]*", check=False)
        shutil.rmtree(root, ignore_errors=True)


def _inspect_ip(container: str, network: str) -> str:
    return _host_docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network,
                        container).stdout.strip()


@contextlib.contextmanager
def running_cluster() -> Iterator[SwarmCluster]:
    """Start the three-node Swarm (see the module's docstring); remove everything afterwards."""
    if kernel_lacks_vxlan():
        pytest.skip("the kernel has no VXLAN (CONFIG_VXLAN): Swarm overlay networks cannot work here")
    _ensure_registry_installed()
    image = node_image()
    remove_leftovers(image)
    root = Path(tempfile.mkdtemp(prefix="bs-swarm-", dir=TMP))  # short: unix socket paths <= 108
    name = root.name.lower().replace("_", "-")
    owner = f"{OWNER_LABEL}={os.getpid()}"
    with contextlib.ExitStack() as stack:
        stack.callback(_rmtree, root, image)
        _host_docker("network", "create", "--label", owner, name)
        stack.callback(_host_docker, "network", "rm", name, check=False)
        gateway = _host_docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                               name).stdout.strip()
        port = free_port()
        registry = stack.enter_context(_registry(root / "registry", gateway, port))

        shared = root / "shared"
        for sub in ("", *SHARED_SUBFOLDERS):
            (shared / sub).mkdir(mode=0o755, exist_ok=True)
            os.chmod(shared / sub, 0o755)
            if os.geteuid() == 0:
                os.chown(shared / sub, 0, 0)

        if _privileged_works(image):
            flags: tuple[str, ...] = ("--privileged",)
        elif Path("/sys/fs/cgroup/cgroup.controllers").exists():
            # The fallback binds the host's cgroup tree; on cgroup v2 that is the host's root.
            pytest.skip("swarm nodes cannot start here (environment limit): --privileged fails and the "
                        "fallback node flags need cgroup v1, this host has cgroup v2")
        else:
            flags = CAPS_FLAGS
        engines, containers = {}, {}
        for node in NODES:
            container = f"{name}-{node}"
            sockets = root / "engines" / node
            sockets.mkdir(parents=True)
            _host_docker("volume", "create", "--label", owner, container)
            stack.callback(_host_docker, "volume", "rm", "-f", container, check=False)
            stack.callback(_host_docker, "rm", "-f", "-v", container, check=False)  # runs before the volume's
            mounts = ["-v", f"{shared}:{SHARED_PATH}"] if node in SERVERS else []
            done = _host_docker("run", "-d", "--name", container, "--hostname", node, "--label", owner,
                                "--network", name, *flags, "--tmpfs", "/run",
                                "-v", f"{container}:/var/lib/docker", "-v", f"{sockets}:/run/node", *mounts,
                                "-e", f"REGISTRY_PORT={port}", "-e", f"REGISTRY_UPSTREAM={gateway}:{port}",
                                image, check=False)
            if done.returncode != 0:
                _node_failure(node, container, f"docker run failed: {done.stderr.strip()}")
            engines[node] = f"unix://{sockets}/docker.sock"
            containers[node] = container
        node_ips = {node: _inspect_ip(containers[node], name) for node in NODES}
        cluster = SwarmCluster(manager=engines[MANAGER], engines=engines, node_ips=node_ips, registry=registry,
                               shared=shared, shared_path=SHARED_PATH, containers=containers, network=name)

        # Every engine answers (three dockerd starting at once on a small machine: allow 120 s).
        for node in NODES:
            deadline = time.monotonic() + 120
            while cluster.docker(node, "version", check=False, timeout=30).returncode != 0:
                state = _host_docker("inspect", "-f", "{{.State.Status}}", containers[node], check=False).stdout
                if state.strip() != "running":
                    _node_failure(node, containers[node], f"the node container is {state.strip() or 'gone'}")
                if time.monotonic() > deadline:
                    _node_failure(node, containers[node], "its engine did not answer in 120 s")
                time.sleep(0.5)

        # The Swarm: init on db, workers join, all Ready, labels.
        cluster.docker(MANAGER, "swarm", "init", "--advertise-addr", node_ips[MANAGER])
        token = cluster.docker(MANAGER, "swarm", "join-token", "-q", "worker").stdout.strip()
        for node in SERVERS:
            for attempt in range(5):
                done = cluster.docker(node, "swarm", "join", "--token", token, f"{node_ips[MANAGER]}:2377",
                                      check=attempt == 4)
                if done.returncode == 0:
                    break
                time.sleep(2)
        deadline = time.monotonic() + 60
        while True:
            listing = cluster.docker(MANAGER, "node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
            ready = {h for h, _, s in (ln.partition(" ") for ln in listing.splitlines()) if s == "Ready"}
            if ready >= set(NODES):
                break
            assert time.monotonic() < deadline, f"Swarm nodes not Ready in 60 s:\n{listing}"
            time.sleep(1)
        for node in NODES:
            cluster.docker(MANAGER, "node", "update", "--label-add", f"{LABELS[node]}=true", node)

        # The registry answers on 127.0.0.1:PORT inside every node (socat to the gateway).
        for node in NODES:
            done = cluster.node_sh(node, f"curl -fsS -m 10 http://{registry}/v2/ >/dev/null", check=False)
            assert done.returncode == 0, f"[{node}] the registry {registry} does not answer inside the node:\n" \
                                         f"{done.stdout}{done.stderr}"
        yield cluster


@pytest.fixture(scope="module")
def swarm_cluster() -> Iterator[SwarmCluster]:
    """A three-node Swarm for the test module (db manager, server-a and server-b workers)."""
    with running_cluster() as cluster:
        yield cluster


def node_labels(cluster: SwarmCluster, node: str) -> dict[str, str]:
    return json.loads(cluster.docker(MANAGER, "node", "inspect", "-f", "{{json .Spec.Labels}}", node).stdout)
