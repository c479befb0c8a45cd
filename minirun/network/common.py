"""What the network API modules share: the network mode a container asks for,
its netns, the checks on names that end up in its files, and error wrapping."""
import datetime
import ipaddress
import os
import re

from minirun.errors import MinirunError
from minirun.linux import proc
from minirun.network.store import DEFAULT_NETWORK, check_container_id, check_network_name

ETC_FILES = ("hosts", "hostname", "resolv.conf")
MODES = ("bridge", "none", "host", "container")


def parse_mode(network):
    """("bridge", name) | ("none", None) | ("host", None) | ("container", id)."""
    network = network or DEFAULT_NETWORK
    if network in ("none", "host"):
        return network, None
    if network.startswith("container:"):
        other = network.partition(":")[2]
        check_container_id(other)
        return "container", other
    check_network_name(network)
    return "bridge", network


def netns_path(netns):
    """The nsfs path of a network namespace given as a PID or a path."""
    if isinstance(netns, int) or (isinstance(netns, str) and netns.isdigit()):
        return f"/proc/{int(netns)}/ns/net"
    return os.fspath(netns)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _me():
    pid = os.getpid()
    return {"pid": pid, "start": proc.start_time(pid)}


def _kernel_error(what, exc):
    if isinstance(exc, MinirunError):
        return exc
    detail = getattr(exc, "strerror", None) or (exc.args[-1] if getattr(exc, "args", None) else exc)
    return MinirunError(f"{what}: {detail}")


def _open_netns(netns):
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise MinirunError(f"network namespace {path}: {e.strerror}") from None
    st, mine = os.fstat(fd), os.stat("/proc/self/ns/net")
    if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
        os.close(fd)
        raise MinirunError(f"{path} is the host's network namespace: a bridged container needs its own")
    return fd


_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_WORD_RE = re.compile(r"^[^\s#;]+$")


def _check_names(hostname, aliases, dns_servers, dns_search, dns_options):
    """Everything that ends up in /etc/hosts or resolv.conf: one word each, so a
    name cannot smuggle extra lines into another container's files."""
    for name in [hostname, *aliases]:
        if not isinstance(name, str) or not _HOST_RE.match(name):
            raise MinirunError(f"invalid hostname or alias {name!r}")
    for server in dns_servers or ():
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise MinirunError(f"invalid DNS server {server!r}") from None
    for word in [*(dns_search or ()), *(dns_options or ())]:
        if not isinstance(word, str) or not _WORD_RE.match(word):
            raise MinirunError(f"invalid DNS search domain or option {word!r}")

