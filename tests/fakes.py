"""A recording engine: what the use cases would ask of Docker, as data, without Docker.

As Tutor's TestTaskRunner does for its jobs, RecordingEngine stands where the Engine stands
(project.engine) and records each call as a Call: the method's name and its arguments by
name, bound with the real Engine's signature (a use case that passes what Engine does not
take fails here too), with what was fed to a command's stdin kept as bytes. It answers from
a small model of Docker's state (images and their labels, volumes and their files, running
services) and, for commands in containers, from canned replies the test registers.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
from dataclasses import dataclass, field
from typing import Callable

from boincserver import context
from boincserver.engine import Engine, Ran
from boincserver.errors import DockerError, NoSuchImage, ServiceNotRunning

SERVICES = ("mysql", "makeproject", "apache")


@dataclass
class Call:
    name: str
    args: dict

    @property
    def command(self) -> list[str]:
        return [str(c) for c in self.args.get("command") or []]

    @property
    def text(self) -> str:
        """The command as one line (or, for a call without one, its arguments), to search in."""
        if "command" in self.args:
            return " ".join(self.command)
        return " ".join(str(v) for v in self.args.values())


@dataclass
class Reply:
    name: str  # "run" or "exec"
    words: tuple[str, ...]  # each must be in the command line
    answer: Callable[[Call], tuple[int, bytes, str]]
    service: str | None = None


def recorded(fn):
    """Record the call, bound by the real Engine method's signature, then answer it."""
    real = inspect.signature(getattr(Engine, fn.__name__))

    def wrapper(self, *args, **kwargs):
        bound = real.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        if "stdin" in values and values["stdin"] is not None and not isinstance(values["stdin"], bytes):
            sink = io.BytesIO()
            values["stdin"](sink)  # the feed runs once, as with Docker
            values["stdin"] = sink.getvalue()
        call = Call(fn.__name__, values)
        self.calls.append(call)
        if self.compose_refusal is not None and fn.__name__ in ("compose_up", "compose_down", "compose_restart",
                                                                "compose_port", "compose_project"):
            raise self.compose_refusal  # as Engine._compose_cmd does (the others go to the stack)
        return fn(self, call)

    wrapper.__name__ = fn.__name__
    wrapper.__signature__ = real
    return wrapper


@dataclass
class RecordingEngine:
    images: dict[str, dict] = field(default_factory=dict)  # tag -> labels
    registry: dict[str, dict] = field(default_factory=dict)  # reference -> labels, for pull
    image_files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (image, path) -> bytes
    volumes: dict[str, dict[str, bytes]] = field(default_factory=dict)  # volume -> {path: bytes}
    running: set[str] = field(default_factory=set)
    free_disk: int | None = 100 << 30  # where Docker keeps images (None: unknown)
    http_port: int = 8080
    calls: list[Call] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)  # containers made outside Compose, by name
    # The engines of other Compose projects (compose_project), by (folder, name): each has its own
    # running services and shares everything else, the calls too.
    bound: dict[tuple[str, str], "RecordingEngine"] = field(default_factory=dict)

    # -- what a test sets up and reads ------------------------------------------------------
    def on(self, name: str, *words: str, service: str | None = None, out: bytes | str | dict | list = b"",
           err: str = "", code: int = 0, answer: Callable[[Call], tuple[int, bytes, str]] | None = None) -> None:
        """Answer `run` or `exec` calls whose command line holds every word (newest rule first)."""
        if isinstance(out, (dict, list)):
            out = json.dumps(out)
        data = out.encode() if isinstance(out, str) else out
        self.replies.insert(0, Reply(name, words, answer or (lambda call: (code, data, err)), service))

    def named(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.name in names]

    def commands(self) -> list[Call]:
        """The commands run in containers (run and exec), in order."""
        return self.named("run", "exec")

    def find(self, name: str, *words: str) -> Call:
        found = [c for c in self.named(name) if all(w in c.text for w in words)]
        assert len(found) == 1, f"{len(found)} {name} calls hold {words}: {[c.text for c in self.named(name)]}"
        return found[0]

    def index(self, call: Call) -> int:
        return next(i for i, c in enumerate(self.calls) if c is call)

    def base_images_current(self) -> None:
        from boincserver import images, pins
        for name in pins.BASE_IMAGE_NAMES:
            self.images[pins.base_image(name)] = {images.INPUTS_LABEL: images.inputs_digest(name)}
        self.images[pins.BASE_OS_IMAGE] = {}

    # -- the engine itself ------------------------------------------------------------------
    @recorded
    def check_engine(self, call):
        return "20.10.24"

    @recorded
    def check_compose(self, call):
        return "v2"

    @recorded
    def buildkit_available(self, call):
        return False

    @recorded
    def build_env(self, call):
        return {"DOCKER_BUILDKIT": "0"}

    @recorded
    def free_disk_bytes(self, call):
        return self.free_disk

    # -- images ---------------------------------------------------------------------------
    @recorded
    def image_labels(self, call):
        labels = self.images.get(call.args["tag"])
        return None if labels is None else dict(labels)

    @recorded
    def image_id(self, call):
        tag = call.args["tag"]
        if tag not in self.images:
            return None
        return "sha256:" + hashlib.sha256(json.dumps([tag, self.images[tag]], sort_keys=True).encode()).hexdigest()

    @recorded
    def pull(self, call):
        tag = call.args["tag"]
        if tag in self.registry:
            self.images[tag] = dict(self.registry[tag])
            return True
        return False

    @recorded
    def build_image(self, call):
        self.images[call.args["tag"]] = dict(call.args["labels"])

    @recorded
    def tag_image(self, call):
        self.images[call.args["target"]] = self.images[call.args["source"]]

    @recorded
    def push_image(self, call):
        self.registry[call.args["reference"]] = dict(self.images[call.args["reference"]])

    @recorded
    def import_rootfs(self, call):
        self.images[call.args["tag"]] = {}

    @recorded
    def save_image(self, call):
        return io.BytesIO()

    @recorded
    def volume_exists(self, call):
        return call.args["name"] in self.volumes

    # -- compose --------------------------------------------------------------------------
    @recorded
    def compose_up(self, call):
        self.running |= set(call.args["services"] or ("mysql", "apache"))

    @recorded
    def compose_stop(self, call):
        self.running -= set(call.args["services"])

    @recorded
    def compose_restart(self, call):
        pass

    @recorded
    def compose_down(self, call):
        self.running.clear()
        if call.args["volumes"]:
            self.volumes.clear()

    @recorded
    def compose_ps(self, call):
        return [{"service": s, "container": f"demo-{s}-1", "state": "running" if s in self.running else "exited",
                 "health": None, "exit_code": 0} for s in SERVICES if s in self.running or s == "makeproject"]

    @recorded
    def compose_logs(self, call):
        return 0

    @recorded
    def compose_port(self, call):
        return f"0.0.0.0:{self.http_port}" if call.args["service"] in self.running else None

    @recorded
    def compose_project(self, call):
        key = (str(call.args["directory"]), call.args["name"])
        if key not in self.bound:
            self.bound[key] = RecordingEngine(
                images=self.images, registry=self.registry, image_files=self.image_files, volumes=self.volumes,
                http_port=self.http_port, calls=self.calls, replies=self.replies, containers=self.containers)
        return self.bound[key]

    @recorded
    def remove_default_network(self, call):
        pass

    compose_refusal: object = None  # as Engine's: set by context.open_project on Swarm

    # -- Swarm: a manager with nodes, services and their tasks, secrets ---------------------
    swarm: dict = field(default_factory=lambda: {"LocalNodeState": "active", "ControlAvailable": True})
    nodes: list = field(default_factory=lambda: [
        {"id": "n1", "hostname": "db", "labels": {"boincserver.db": "true"}, "state": "ready",
         "availability": "active", "address": "10.0.0.2"},
        {"id": "n2", "hostname": "server-a", "labels": {"boincserver.server": "true"}, "state": "ready",
         "availability": "active", "address": "10.0.0.3"}])
    services: dict = field(default_factory=dict)  # name -> {"replicas": n, "image": ref}
    tasks: dict = field(default_factory=dict)  # service -> [task], newest first
    secrets: dict = field(default_factory=dict)  # name -> value (bytes)
    # How a service's new task ends: "Complete", "Running", "Failed", "Pending" (by service suffix).
    task_outcome: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)  # DOCKER_HOST -> RecordingEngine of that node
    node_volumes: set = field(default_factory=set)  # volumes on this (node's) engine

    stack_binding: object = None

    @recorded
    def bind_stack(self, call):
        self.stack_binding = dict(call.args)

    @recorded
    def on_host(self, call):
        host = call.args["host"]
        if host not in self.hosts:
            self.hosts[host] = RecordingEngine(images=self.images, calls=self.calls, replies=self.replies)
        return self.hosts[host]

    @recorded
    def swarm_info(self, call):
        return dict(self.swarm)

    @recorded
    def swarm_nodes(self, call):
        return [dict(n) for n in self.nodes]

    @recorded
    def stack_deploy(self, call):
        stack, env = call.args["name"], call.args["env"]
        count = 0
        for svc in ("mysql", "db-user", "makeproject", "apache"):
            name = f"{stack}_{svc}"
            replicas = int(env.get({"db-user": "DB_USER_REPLICAS", "makeproject": "MAKEPROJECT_REPLICAS",
                                    "apache": "APACHE_REPLICAS"}.get(svc, "X"), "1"))
            old = self.services.get(name, {}).get("replicas", 0)
            image = env.get({"mysql": "MYSQL_IMAGE", "apache": "APACHE_IMAGE"}.get(svc, "MAKEPROJECT_IMAGE"), "img")
            self.services[name] = {"replicas": replicas, "image": image}
            if replicas and not old:
                count += 1
                outcome = self.task_outcome.get(svc, "Complete" if svc in ("db-user", "makeproject") else "Running")
                node = "db" if svc in ("mysql", "db-user") else "server-a"
                self.tasks.setdefault(name, []).insert(0, {
                    "ID": f"t{len(self.calls)}{svc}", "Name": f"{name}.1", "Node": node, "DesiredState": "Running",
                    "CurrentState": f"{outcome} 1 second ago",
                    "Error": "no suitable node (scheduling constraints not satisfied)" if outcome == "Pending"
                    else ("task: non-zero exit (2)" if outcome == "Failed" else "")})
            if old and not replicas:
                for task in self.tasks.get(name, []):
                    task["DesiredState"] = "Shutdown"

    @recorded
    def stack_rm(self, call):
        prefix = call.args["name"] + "_"
        for name in [n for n in self.services if n.startswith(prefix)]:
            del self.services[name]
            self.tasks.pop(name, None)

    @recorded
    def stack_services(self, call):
        prefix = call.args["name"] + "_"
        return [{"Name": n, "Replicas": f"{s['replicas']}/{s['replicas']}", "Image": s.get("image", "img")}
                for n, s in self.services.items() if n.startswith(prefix)]

    @recorded
    def stack_networks(self, call):
        return []

    @recorded
    def service_tasks(self, call):
        return [dict(t) for t in self.tasks.get(call.args["service"], [])]

    @recorded
    def service_logs(self, call):
        call.args["on_line"]("[makeproject] error: make_project failed")

    @recorded
    def secret_exists(self, call):
        return call.args["name"] in self.secrets

    @recorded
    def secret_create(self, call):
        self.secrets[call.args["name"]] = call.args["value"]

    @recorded
    def secret_rm(self, call):
        del self.secrets[call.args["name"]]

    @recorded
    def volumes_named(self, call):
        return [n for n in call.args["names"] if n in self.node_volumes]

    @recorded
    def containers_using(self, call):
        return []

    @recorded
    def remove_volumes(self, call):
        self.node_volumes.difference_update(call.args["names"])

    # -- containers and images by name ------------------------------------------------------
    @recorded
    def containers_named(self, call):
        return sorted(n for n in self.containers if n.startswith(call.args["prefix"]))

    @recorded
    def images_named(self, call):
        return sorted(t for t in self.images if t.startswith(call.args["prefix"]))

    @recorded
    def remove_containers(self, call):
        self.containers.difference_update(call.args["names"])

    @recorded
    def remove_images(self, call):
        for reference in call.args["references"]:
            del self.images[reference]

    # -- commands in containers -------------------------------------------------------------
    @recorded
    def run(self, call):
        args = call.args
        if (args["service"] is None) == (args["image"] is None):
            raise ValueError("run: give a service or an image")
        if args["image"] is not None and args["image"] not in self.images:
            raise NoSuchImage(["docker", "run", args["image"]], 125, f"Unable to find image '{args['image']}'")
        if call.command[:2] == ["-c", context.READ_ONE_FILE]:
            return self._read_file(call)
        return self._answer(call)

    @recorded
    def exec(self, call):
        if call.args["service"] not in self.running:
            raise ServiceNotRunning(["docker", "compose", "exec", call.args["service"]], 1,
                                    f'service "{call.args["service"]}" is not running')
        if call.args["interactive"]:
            return Ran(call.command, 0, None, "")
        return self._answer(call)

    def _read_file(self, call: Call) -> Ran:
        where = call.command[2]
        mounts = call.args["volumes"]
        if mounts:
            data = self.volumes.get(mounts[0][0], {}).get(where.removeprefix(mounts[0][1] + "/"))
        else:
            data = self.image_files.get((call.args["image"], where))
        return Ran(call.command, 3 if data is None else 0, data if data is not None else b"", "")

    def _answer(self, call: Call) -> Ran:
        service = call.args.get("service")
        for reply in self.replies:
            if reply.name == call.name and (reply.service in (None, service)) \
                    and all(w in call.text for w in reply.words):
                code, out, err = reply.answer(call)
                break
        else:
            code, out, err = 0, b"", ""
        if call.args["consume"] is not None:
            out = call.args["consume"](io.BytesIO(out))
        if code != 0 and call.args["check"]:
            raise DockerError(call.command, code, err)
        return Ran(call.command, code, out, err)
