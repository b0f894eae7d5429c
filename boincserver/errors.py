"""The one error family of boincserver: the CLI prints any of them as `Error: ...`, exit 1."""

from __future__ import annotations


class BoincServerError(Exception):
    """A problem the user can act on; its message says what is wrong and what to do."""

    advice: str | None = None

    def __init__(self, message: str, advice: str | None = None):
        super().__init__(message)
        if advice is not None:
            self.advice = advice


class InvalidInput(BoincServerError):
    """A bad argument or setting; nothing was changed."""


class ProjectError(BoincServerError):
    """The project folder or the running project is not in the state a command needs."""


class SourceError(BoincServerError):
    """The BOINC source is missing, unreadable or not the pinned commit."""


class EnvironmentProblem(BoincServerError):
    """Something `up` needs from the machine is missing; `advice` is the command that fixes it."""


class EngineUnreachable(EnvironmentProblem):
    """Docker's engine does not answer (not installed, not started, or no permission)."""


class ComposeMissing(EnvironmentProblem):
    """Docker's Compose v2 plugin is not installed."""


class DockerError(BoincServerError):
    """A docker or docker compose command failed; keeps the command and what it printed."""

    def __init__(self, command: list[str], returncode: int | None, stderr: str, stdout: str = ""):
        self.command = [str(c) for c in command]
        self.returncode = returncode
        self.stderr = stderr or ""
        self.stdout = stdout or ""
        tail = "\n".join((self.stderr or self.stdout).strip().splitlines()[-15:])
        super().__init__(
            f"`{' '.join(self.command)}` failed (exit {returncode})" + (f":\n{tail}" if tail else "")
        )


class ServiceNotRunning(DockerError):
    """The Compose service is not running (or the project has no such service)."""


class NoSuchImage(DockerError):
    """The image is not on this machine and could not be pulled."""
