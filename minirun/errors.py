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
    def __init__(self, container_id):
        super().__init__("container does not exist")
        self.container_id = container_id


class ContainerExists(MinirunError):
    def __init__(self, container_id):
        super().__init__(f"container with id exists: {container_id}")


class ContainerNotRunning(MinirunError):
    def __init__(self, container_id=None):
        super().__init__("container not running")


class InvalidState(MinirunError):
    """A verb that is not allowed in the container's current state."""


class CgroupError(MinirunError):
    """The kernel refused a cgroup operation; the message names the file and value."""


class ExecError(MinirunError):
    """The container's process could not be started."""
