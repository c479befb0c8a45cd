"""A service's `network_mode`, `ulimits` and `sysctls`: checked and put in the
canonical form `config` prints (the shape `docker compose config` prints).

    network_mode  host | none | bridge | service:NAME | container:NAME
                  (exclusive with `networks`; service:NAME must be a service of the
                  project, and becomes a dependency of this one, as in Compose)
    ulimits       {nofile: {soft: 1024, hard: 2048}, nproc: 512}   (a number: soft = hard)
    sysctls       {net.core.somaxconn: "1024"}  (map, or list of NAME=VALUE); only
                  namespaced ones (net.*, IPC's kernel.msg*/shm*/sem, fs.mqueue.*),
                  checked here so a host-wide one fails before anything is made
"""
import resource

from minirun.compose.fields import fail, mapping, type_name

NETWORK_MODES = ("host", "none", "bridge")


def network_mode(where, value, services):
    if not isinstance(value, str):
        fail(where, f"must be a string, not {type_name(value)}")
    kind, sep, target = value.partition(":")
    if value in NETWORK_MODES:
        return value
    if sep and kind in ("service", "container") and target:
        if kind == "service" and target not in services:
            fail(where, f"service {target!r} is not defined in the project")
        return value
    fail(where, f"invalid network_mode {value!r}: use host, none, bridge, service:NAME or "
                f"container:NAME")


def _limit(where, value):
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, f"must be an integer, not {type_name(value)}")
    return value


def ulimits(where, value):
    if not isinstance(value, dict):
        fail(where, f"must be a mapping, not {type_name(value)}")
    out = {}
    for name, limit in value.items():
        w = f"{where}.{name}"
        if not hasattr(resource, "RLIMIT_" + str(name).upper()):
            fail(w, f"unknown ulimit {name!r}")
        if isinstance(limit, dict):
            unknown = set(limit) - {"soft", "hard"}
            if unknown or not {"soft", "hard"} <= set(limit):
                fail(w, "must be a number or a mapping of soft and hard")
            soft, hard = _limit(f"{w}.soft", limit["soft"]), _limit(f"{w}.hard", limit["hard"])
            if soft > hard:
                fail(w, f"soft limit {soft} is greater than the hard limit {hard}")
            out[str(name)] = {"soft": soft, "hard": hard}
        else:
            out[str(name)] = _limit(w, limit)
    return out


def sysctls(where, value):
    from minirun.spec import sysctl_namespace

    out = {}
    for name, v in mapping(where, value).items():
        if sysctl_namespace(name) is None:
            fail(f"{where}.{name}", "not a namespaced sysctl: it would change the host")
        if v is None or isinstance(v, (dict, list)):
            fail(f"{where}.{name}", "must have a value")
        out[name] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def ulimit_flags(value):
    """--ulimit strings: name=soft[:hard]."""
    return [f"{n}={v['soft']}:{v['hard']}" if isinstance(v, dict) else f"{n}={v}"
            for n, v in (value or {}).items()]


def network_flag(config, mode):
    """The front end's --network for a network_mode: service:NAME is that
    service's first container (its container_name, or <project>-NAME-1)."""
    if mode.startswith("service:"):
        target = mode.split(":", 1)[1]
        svc = config["services"][target]
        return "container:" + (svc.get("container_name") or f"{config['name']}-{target}-1")
    return mode
