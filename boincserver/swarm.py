"""The project on Docker Swarm: `up --swarm`, `down --swarm`, `status --swarm`.

The stack is stack.yaml, rendered from the same template as compose.yaml (render.py). Swarm
has no ordering and CLI 20.10's stack files have no jobs, so `up` deploys in phases: mysql,
then the db-user job on the database's node, then the makeproject job on a server node, then
apache. A job is a service whose one task is not restarted once it succeeded; setting its
replicas to 0 and back to 1 runs it again.

Nothing here prints: progress goes to a Reporter, results are returned.
"""

from __future__ import annotations

import secrets as secrets_random
import string
import time
from dataclasses import dataclass

from boincserver import paths, render
from boincserver.context import Project, Reporter, check_docker
from boincserver.engine import Engine, task_state
from boincserver.errors import BoincServerError, InvalidInput, ProjectError
from boincserver.settings import Settings

DB_LABEL = "boincserver.db"
SERVER_LABEL = "boincserver.server"
STORAGE_VOLUMES = render.SWARM_STORAGE_VOLUMES

# -- up ------------------------------------------------------------------------------------
JOBS = ("db-user", "makeproject")
REPLICAS_ENV = {"db-user": "DB_USER_REPLICAS", "makeproject": "MAKEPROJECT_REPLICAS", "apache": "APACHE_REPLICAS"}
IMAGE_ENV = {"mysql": "MYSQL_IMAGE", "makeproject": "MAKEPROJECT_IMAGE", "apache": "APACHE_IMAGE"}
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PROJECT_LABEL = "org.boincserver.project"
# A task that waits this long for a node says why, rather than letting `up` time out.
PENDING_GRACE = 20.0


@dataclass
class SwarmUp:
    master_url: str
    stack: str
    nodes: dict[str, str]  # service -> the node its task ran or runs on
    seconds: float


def manager_of(project: Project, settings: Settings | None = None) -> Engine:
    """The engine of the Swarm manager: swarm_manager's, or the one this machine's docker uses."""
    settings = settings or project.settings
    return project.engine.on_host(settings.swarm_manager) if settings.swarm_manager else project.engine


def db_secret_name(settings: Settings) -> str:
    return f"{settings.compose_name}_db_password"


def check_manager(manager: Engine, settings: Settings) -> None:
    """Refuse an engine that is not a Swarm manager, saying which one and how to fix it."""
    where = settings.swarm_manager or "this machine's Docker engine"
    info = manager.swarm_info()
    if info.get("LocalNodeState") != "active":
        raise ProjectError(f"{where} is not part of a Docker Swarm; nothing was changed",
                           advice="make it a manager with `docker swarm init`, or set swarm_manager in "
                                  "boincserver.toml to a manager's engine (ssh://USER@HOST)")
    if not info.get("ControlAvailable"):
        raise ProjectError(f"{where} is a Swarm worker, not a manager; nothing was changed",
                           advice="set swarm_manager in boincserver.toml to a manager's engine (ssh://USER@HOST)")


def check_labelled_nodes(manager: Engine) -> None:
    """Refuse a Swarm without a ready, active node for the database and one for the server."""
    nodes = manager.swarm_nodes()
    for label, what in ((DB_LABEL, "the database"), (SERVER_LABEL, "apache and the daemons")):
        usable = [n for n in nodes if n["labels"].get(label) == "true"
                  and n["state"] == "ready" and n["availability"] == "active"]
        if not usable:
            raise ProjectError(f"no ready, active Swarm node is labelled {label}=true for {what}; nothing was changed",
                               advice=f"label one: `docker node update --label-add {label}=true NODE` "
                                      "(`docker node ls` lists them)")


def up(project: Project, reporter: Reporter, url_base: str | None = None, http_port: int | None = None,
       changes: dict | None = None, timeout: float = 900) -> SwarmUp:
    """Deploy the project as a Swarm stack in phases and wait until apache serves on a node.

    Apache stops while the jobs run (as Compose recreates it when its values change)."""
    from boincserver import project as core
    started = time.monotonic()
    old = project.settings
    new = old.with_changes(url_base=url_base, http_port=http_port, **{**(changes or {}), "deploy": "swarm"})
    if not new.registry:
        raise InvalidInput("Swarm nodes pull the project's images: `up --swarm` needs a registry; nothing was changed",
                           advice="set it: `registry = \"HOST[:PORT]/PATH\"` in boincserver.toml (every node must "
                                  "be able to pull from it)")
    if new.offline_signing_keys:
        # The key is sent to the secrets volume through a one-shot container before the
        # project is made; on Swarm that volume is on a node: the job would make a key there.
        raise InvalidInput("offline code signing is not available on Swarm yet; nothing was changed",
                           advice="run this project with Compose (`boincserver up`), or without "
                                  "offline_signing_keys")
    if new.serves_https:
        raise InvalidInput("on Swarm, HTTPS ends at the load balancer in front of the server nodes; nothing was changed",
                           advice="serve TLS there and say so: `boincserver up --swarm --tls proxy`")
    check_docker(project.engine)
    manager = manager_of(project, new)
    check_manager(manager, new)
    check_labelled_nodes(manager)
    if old.deploy != "swarm" and any(r["state"] == "running" for r in project.engine.compose_ps()):
        raise ProjectError("the project runs here with Compose; nothing was changed",
                           advice="stop it first with `boincserver down` (its volumes are not carried over to Swarm)")

    def remaining() -> float:
        return max(10.0, timeout - (time.monotonic() - started))

    core.write_settings(project, new)
    built = core.build(project, reporter, push=True)
    env = {**process_env(new.env()), **{IMAGE_ENV[s]: built.images[s]["tags"][0] for s in IMAGE_ENV}}
    secret = db_secret_name(new)
    if not manager.secret_exists(secret):
        reporter.step(f"creating the Swarm secret {secret} (the database user's password)")
        password = "".join(secrets_random.choice(PASSWORD_ALPHABET) for _ in range(32))
        manager.secret_create(secret, password.encode(), {PROJECT_LABEL: new.compose_name})
    stack = new.compose_name
    stack_file = project.dir / paths.STACK_FILE

    def deploy(running: tuple[str, ...]) -> None:
        replicas = {REPLICAS_ENV[s]: "1" if s in running else "0" for s in REPLICAS_ENV}
        manager.stack_deploy(stack_file, stack, {**env, **replicas}, reporter.line)

    reporter.step(f"deploying stack {stack}: mysql on the database node (apache stops while the jobs run)")
    deploy(())
    nodes = {"mysql": wait_for_task(manager, reporter, f"{stack}_mysql", "running", set(), remaining())}
    for job in JOBS:
        before = {t["ID"] for t in manager.service_tasks(f"{stack}_{job}")}
        reporter.step(f"running the {job} job")
        deploy(JOBS[:JOBS.index(job) + 1])
        nodes[job] = wait_for_task(manager, reporter, f"{stack}_{job}", "complete", before, remaining())
    reporter.step("starting apache, the scheduler and the daemons")
    deploy(JOBS + ("apache",))
    nodes["apache"] = wait_for_task(manager, reporter, f"{stack}_apache", "running", set(), remaining())
    return SwarmUp(new.master_url, stack, nodes, time.monotonic() - started)


def process_env(dotenv: dict[str, str]) -> dict[str, str]:
    """.env's values as a process environment: `stack deploy` reads no .env, and the values
    .env holds in single quotes (literal to Compose: JSON texts) are passed without them."""
    return {k: v[1:-1] if len(v) >= 2 and v[0] == v[-1] == "'" else v for k, v in dotenv.items()}


def wait_for_task(manager: Engine, reporter: Reporter, service: str, want: str, before: set[str],
                  timeout: float) -> str:
    """Wait until a task of `service` not in `before` is running (healthy: Swarm says running
    only once the health check passes) or complete; the node it is on. A failed job, or a task
    no node can take, ends the wait with the reason and the service's last log lines."""
    deadline = time.monotonic() + timeout
    pending_since: float | None = None
    while True:
        tasks = [t for t in manager.service_tasks(service) if t["ID"] not in before]
        for t in tasks:
            if task_state(t) == want and (want == "complete" or t["DesiredState"].lower() == "running"):
                return t["Node"]
        if want == "complete":
            failed = [t for t in tasks if task_state(t) in ("failed", "rejected")]
            if failed:
                _show_logs(manager, reporter, service)
                raise ProjectError(f"the {service} job failed: {failed[0]['Error'] or task_state(failed[0])}",
                                   advice=f"its last lines are above; `docker service logs {service}` on the manager")
        pending = [t for t in tasks if task_state(t) == "pending" and t.get("Error")]
        if pending:
            pending_since = pending_since or time.monotonic()
            if time.monotonic() - pending_since > PENDING_GRACE:
                raise ProjectError(f"no Swarm node can run {service}: {pending[0]['Error']}",
                                   advice=f"check the node labels ({DB_LABEL}, {SERVER_LABEL}) and that "
                                          "those nodes are ready and active (`docker node ls`)")
        else:
            pending_since = None
        if time.monotonic() > deadline:
            _show_logs(manager, reporter, service)
            last = tasks[0] if tasks else None
            raise ProjectError(f"{service} is not {want} after {timeout:.0f}s"
                               + (f" (its task: {last['CurrentState']}{', ' + last['Error'] if last['Error'] else ''})"
                                  if last else ""),
                               advice=f"see `boincserver status` and `docker service ps --no-trunc {service}` on the manager")
        time.sleep(1)


def _show_logs(manager: Engine, reporter: Reporter, service: str) -> None:
    reporter.step(f"{service}'s last lines:")
    try:
        manager.service_logs(service, 30, reporter.line)
    except BoincServerError:
        reporter.line("(its logs cannot be read)")


# -- down ----------------------------------------------------------------------------------
def volumes_of(settings: Settings) -> list[str]:
    return [f"{settings.compose_name}_{v}" for v in ("mysql", "mysql-socket") + STORAGE_VOLUMES]


def down(project: Project, reporter: Reporter, volumes: bool, timeout: float = 120) -> dict:
    """Remove the stack (services, networks) and wait until it is gone; with `volumes`, also
    the database password's secret and, on every node swarm_nodes names, the project's volumes
    (the shared folder's files too). Returns what was removed and what is left where."""
    settings = project.settings
    manager = manager_of(project)
    check_manager(manager, settings)
    stack = settings.compose_name
    # An image the server nodes have, with `find`, to empty the shared folder with afterwards.
    cleaner = next((s["Image"] for s in manager.stack_services(stack) if s["Name"] == f"{stack}_apache"), None)
    reporter.step(f"removing stack {stack}")
    manager.stack_rm(stack, reporter.line)
    deadline = time.monotonic() + timeout
    while manager.stack_services(stack) or manager.stack_networks(stack):
        if time.monotonic() > deadline:
            raise ProjectError(f"stack {stack} is still being removed after {timeout:.0f}s",
                               advice="run `boincserver down --swarm` again in a minute")
        time.sleep(1)
    result: dict = {"stack": stack, "secrets": [], "volumes": {}, "left": {}}
    if not volumes:
        return result
    secret = db_secret_name(settings)
    if manager.secret_exists(secret):
        manager.secret_rm(secret)
        result["secrets"].append(secret)
    names = volumes_of(settings)
    storage = {f"{stack}_{v}" for v in STORAGE_VOLUMES} if settings.swarm_storage else set()
    cleared = False
    for node in manager.swarm_nodes():
        address = settings.swarm_nodes.get(node["hostname"])
        if address is None:
            result["left"][node["hostname"]] = names
            continue
        engine = manager.on_host(address)
        found = _wait_volumes_free(engine, names, deadline)
        if not cleared and cleaner and storage & set(found):
            # Bound volumes keep their files in swarm_storage: emptied once, from one node.
            reporter.step(f"deleting the project's files in {settings.swarm_storage} (from {node['hostname']})")
            for name in sorted(storage & set(found)):
                engine.run(["sh", "-c", "find /v -mindepth 1 -delete"], image=cleaner, volumes=[(name, "/v", "rw")])
            cleared = True
        reporter.step(f"removing volumes on {node['hostname']}: {', '.join(found) or 'none'}")
        engine.remove_volumes(found)
        result["volumes"][node["hostname"]] = found
    return result


def _wait_volumes_free(engine: Engine, names: list[str], deadline: float) -> list[str]:
    """The volumes of `names` on this node, once no container holds them (stack rm ends the
    tasks' containers a moment after the services are gone)."""
    while True:
        found = engine.volumes_named(names)
        if not engine.containers_using(found) or time.monotonic() > deadline:
            return found
        time.sleep(1)


# -- status --------------------------------------------------------------------------------
def status(project: Project) -> dict:
    """The stack's services, each with its current tasks (node, state, error), and the nodes."""
    settings = project.settings
    manager = manager_of(project)
    check_manager(manager, settings)
    services = []
    for svc in sorted(manager.stack_services(settings.compose_name), key=lambda s: s["Name"]):
        tasks = [t for t in manager.service_tasks(svc["Name"])
                 if t["DesiredState"].lower() in ("running", "ready", "accepted")]
        services.append({"service": svc["Name"].removeprefix(f"{settings.compose_name}_"),
                         "replicas": svc.get("Replicas", ""), "image": svc.get("Image", ""),
                         "tasks": [{"node": t["Node"], "state": t["CurrentState"], "error": t.get("Error", "")}
                                   for t in tasks]})
    nodes = [{k: n[k] for k in ("hostname", "state", "availability", "address")}
             | {"roles": sorted(k.removeprefix("boincserver.") for k, v in n["labels"].items()
                                if k in (DB_LABEL, SERVER_LABEL) and v == "true")}
             for n in manager.swarm_nodes()]
    return {"project": settings.project, "master_url": settings.master_url, "deploy": "swarm",
            "stack": settings.compose_name, "services": services, "nodes": nodes}
