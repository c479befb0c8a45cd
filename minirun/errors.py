"""One exception family for everything minirun reports to a user.

Messages reuse runc's wording where engines match on it: containerd's shim
treats "does not exist", "container not running" and "no such process" in a
failed `kill` as NotFound, and podman maps "no such file or directory" and
"permission denied" to exit codes 127 and 126.
"""


class MinirunError(Exception):
    """An error with a message fit for one line on stderr."""

    exit_code = 1


class ConfigError(MinirunError):
    """config.json (or a --process file) is malformed or asks for the impossible."""


class ContainerNotFound(MinirunError):
    """No container by that id (runc's words) or name/id prefix (Docker's words)."""

    def __init__(self, container_id, message="container does not exist"):
        super().__init__(message)
        self.container_id = container_id

    @classmethod
    def docker(cls, ref):
        return cls(ref, f"No such container: {ref}")


class ContainerExists(MinirunError):
    def __init__(self, container_id):
        super().__init__(f"container with id exists: {container_id}")


class ContainerNotRunning(MinirunError):
    def __init__(self, container_id=None):
        super().__init__("container not running")


class StateCorrupt(MinirunError):
    """A container's state file exists but cannot be read or makes no sense."""


class InvalidState(MinirunError):
    """A verb that is not allowed in the container's current state."""


class CgroupError(MinirunError):
    """The kernel refused a cgroup operation; the message names the file and value."""


class BadOption(MinirunError):
    """A Docker-style flag value that cannot be used: Docker's exit status 125."""

    exit_code = 125


class ExecError(MinirunError):
    """The container's process could not be started (e.g. its cwd is missing).
    `kind` travels from the container's init to the runtime (report_error);
    `docker_exit_code` is what `minirun run`/`exec` exit with."""

    kind = "exec"
    docker_exit_code = 125


class CommandNotFound(ExecError):
    kind = "not-found"
    docker_exit_code = 127


class CommandNotInvokable(ExecError):
    kind = "cannot-invoke"
    docker_exit_code = 126


def from_report(msg, default="container process exited during setup"):
    """The exception a child stage reported as {"error", "kind"} (spawn.report_error)."""
    msg = msg or {}
    kinds = {c.kind: c for c in (ExecError, CommandNotFound, CommandNotInvokable)}
    return kinds.get(msg.get("kind"), MinirunError)(msg.get("error") or default)


def docker_exit_code(exc):
    """Docker's status for a container that could not run: 126 (cannot invoke),
    127 (not found), else 125 (minirun failed)."""
    return getattr(exc, "docker_exit_code", 125)
