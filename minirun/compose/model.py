"""The Compose model: validate a loaded document and normalise it.

normalize(source) checks every key of every service against the Compose
specification's rules (the subset minirun runs, listed in SERVICE_KEYS) and
returns the canonical form `minirun compose config` prints, the same shape as
`docker compose config`: environment and labels as maps, ports and volumes in
long syntax, depends_on as a map with conditions, relative paths made absolute,
env_file folded into environment, top-level networks/volumes with their real
names (<project>_<name>).  Errors name the service and the key.

merge(base, override) is the spec's merge of two files.
"""
import os
import re
import shlex

from minirun.compose.loader import ComposeError

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "networks", "depends_on", "healthcheck", "restart", "container_name",
    "hostname", "labels", "user", "working_dir", "stop_signal", "stop_grace_period", "init",
    "read_only", "tmpfs", "cap_add", "cap_drop", "deploy", "mem_limit", "cpus", "pids_limit",
    "profiles", "secrets", "configs", "scale", "tty", "stdin_open", "pull_policy",
}
TOP_KEYS = {"version", "name", "services", "networks", "volumes", "secrets", "configs"}
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^\d+$")


def fail(where, message):
    raise ComposeError(f"{where}: {message}")


# --- small type checks --------------------------------------------------------------
def _str(where, value, allow_number=True):
    if isinstance(value, bool) or value is None:
        fail(where, f"must be a string, not {_kind(value)}")
    if isinstance(value, (int, float)) and allow_number:
        return str(value)
    if not isinstance(value, str):
        fail(where, f"must be a string, not {_kind(value)}")
    return value


def _kind(value):
    return {dict: "a mapping", list: "a list", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number", str: "a string"}.get(type(value), "a value")


def _bool(where, value):
    if not isinstance(value, bool):
        fail(where, f"must be a boolean (true or false), not {_kind(value)}")
    return value


def _list_of_str(where, value):
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        fail(where, f"must be a list of strings, not {_kind(value)}")
    return [_str(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _command(where, value):
    """String (shell-split, as Compose does) or list."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            fail(where, f"cannot split {value!r}: {e}")
    if isinstance(value, list):
        return [_str(f"{where}[{i}]", v) for i, v in enumerate(value)]
    fail(where, f"must be a string or a list, not {_kind(value)}")


def _duration(where, value):
    text = _str(where, value)
    if not DURATION.match(text):
        fail(where, f"invalid duration {text!r}: use e.g. 10s, 1m30s, 500ms")
    return text


def _mapping(where, value, list_sep="="):
    """A map, or a list of KEY=VALUE (KEY alone: null)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                fail(f"{where}.{k}", f"must be a string, number, boolean or null, not {_kind(v)}")
            out[str(k)] = _scalar(v)
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            item = _str(f"{where}[{i}]", item)
            key, sep, val = item.partition(list_sep)
            if not key:
                fail(f"{where}[{i}]", f"empty key in {item!r}")
            out[key] = val if sep else None
        return out
    fail(where, f"must be a mapping or a list, not {_kind(value)}")


def _scalar(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _abs(project_dir, path):
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(project_dir, path))


# --- ports -----------------------------------------------------------------------------
_PORT_SHORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<published>\d+(?:-\d+)?)?:)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$")


def _ports(where, value):
    if not isinstance(value, list):
        fail(where, f"must be a list, not {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        if isinstance(item, dict):
            unknown = set(item) - {"target", "published", "host_ip", "protocol", "mode", "name",
                                   "app_protocol"}
            if unknown:
                fail(w, f"additional property {sorted(unknown)[0]!r} is not allowed")
            if "target" not in item:
                fail(w, "target is required")
            target = _port_number(f"{w}.target", item["target"])
            published = item.get("published")
            entry = {"mode": item.get("mode", "ingress"), "target": target}
            if published is not None:
                entry["published"] = str(_port_number(f"{w}.published", published))
            if item.get("host_ip"):
                entry["host_ip"] = _str(f"{w}.host_ip", item["host_ip"])
            entry["protocol"] = item.get("protocol", "tcp")
            if entry["protocol"] not in ("tcp", "udp"):
                fail(f"{w}.protocol", f"invalid protocol {entry['protocol']!r}")
            out.append(entry)
            continue
        text = _str(w, item)
        m = _PORT_SHORT.match(text)
        if not m:
            fail(w, f"invalid port {text!r}: use [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
        targets = _range(w, m.group("target"))
        published = _range(w, m.group("published")) if m.group("published") else None
        if published and len(published) != len(targets):
            fail(w, f"port ranges {text!r} do not have the same length")
        for k, target in enumerate(targets):
            entry = {"mode": "ingress", "target": target}
            if published:
                entry["published"] = str(published[k])
            if m.group("ip"):
                entry["host_ip"] = m.group("ip").strip("[]")
            entry["protocol"] = m.group("proto") or "tcp"
            out.append(entry)
    return out


def _range(where, text):
    lo, _, hi = text.partition("-")
    lo_n, hi_n = int(lo), int(hi or lo)
    if not 0 < lo_n <= hi_n < 65536:
        fail(where, f"invalid port range {text!r}")
    return list(range(lo_n, hi_n + 1))


def _port_number(where, value):
    try:
        n = int(str(value))
    except ValueError:
        fail(where, f"invalid port {value!r}")
    if not 0 < n < 65536:
        fail(where, f"invalid port {value!r}: must be 1-65535")
    return n


# --- volumes ----------------------------------------------------------------------------
def _volumes(where, value, project_dir, declared):
    if not isinstance(value, list):
        fail(where, f"must be a list, not {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        if isinstance(item, dict):
            unknown = set(item) - {"type", "source", "target", "read_only", "bind", "volume",
                                   "tmpfs", "consistency"}
            if unknown:
                fail(w, f"additional property {sorted(unknown)[0]!r} is not allowed")
            kind = item.get("type")
            if kind not in ("volume", "bind", "tmpfs"):
                fail(f"{w}.type", f"must be volume, bind or tmpfs, not {kind!r}")
            if not item.get("target"):
                fail(w, "target is required")
            entry = {"type": kind}
            source = item.get("source")
            if kind == "bind":
                if not source:
                    fail(w, "source is required for a bind mount")
                entry["source"] = _abs(project_dir, _str(f"{w}.source", source))
            elif kind == "volume" and source:
                entry["source"] = _str(f"{w}.source", source)
            elif kind == "tmpfs" and source:
                fail(w, "source is not allowed for tmpfs")
            entry["target"] = _target(f"{w}.target", item["target"])
            if item.get("read_only"):
                entry["read_only"] = _bool(f"{w}.read_only", item["read_only"])
            for sub in ("bind", "volume", "tmpfs"):
                if sub in item:
                    if not isinstance(item[sub], dict):
                        fail(f"{w}.{sub}", "must be a mapping")
                    entry[sub] = dict(item[sub])
            if kind == "bind":
                entry.setdefault("bind", {}).setdefault("create_host_path", False)
            out.append(entry)
            continue
        text = _str(w, item)
        parts = text.split(":")
        if len(parts) == 1:
            out.append({"type": "volume", "target": _target(w, parts[0])})
            continue
        if len(parts) > 3:
            fail(w, f"invalid volume specification {text!r}")
        source, target = parts[0], parts[1]
        mode = parts[2].split(",") if len(parts) == 3 else []
        bad = [m for m in mode if m not in ("ro", "rw", "z", "Z", "nocopy", "cached",
                                            "delegated", "consistent")]
        if bad:
            fail(w, f"invalid mode {bad[0]!r} in volume specification {text!r}")
        if source.startswith((".", "/", "~")):
            entry = {"type": "bind", "source": _abs(project_dir, source),
                     "target": _target(w, target), "bind": {"create_host_path": True}}
        else:
            entry = {"type": "volume", "source": source, "target": _target(w, target)}
            if "nocopy" in mode:
                entry["volume"] = {"nocopy": True}
        if "ro" in mode:
            entry["read_only"] = True
        out.append(entry)
    for i, entry in enumerate(out):
        if entry["type"] == "volume" and entry.get("source") and entry["source"] not in declared:
            fail(f"{where}[{i}]", f"service refers to undefined volume {entry['source']}: "
                                  f"declare it under the top-level volumes")
    targets = [e["target"] for e in out]
    dup = {t for t in targets if targets.count(t) > 1}
    if dup:
        fail(where, f"duplicate mount target {sorted(dup)[0]}")
    return out


def _target(where, value):
    text = _str(where, value)
    if not text.startswith("/"):
        fail(where, f"the container path {text!r} must be absolute")
    if os.path.normpath(text) == "/":
        fail(where, "the container path can't be /")
    return os.path.normpath(text)


# --- the rest ---------------------------------------------------------------------
def _healthcheck(where, value):
    if not isinstance(value, dict):
        fail(where, f"must be a mapping, not {_kind(value)}")
    unknown = set(value) - {"test", "interval", "timeout", "retries", "start_period",
                            "start_interval", "disable"}
    if unknown:
        fail(where, f"additional property {sorted(unknown)[0]!r} is not allowed")
    out = {}
    if value.get("disable"):
        return {"disable": True}
    if "test" in value:
        test = value["test"]
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        test = _list_of_str(f"{where}.test", test)
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            fail(f"{where}.test", "must start with CMD, CMD-SHELL or NONE (or be a string)")
        if test[0] == "NONE":
            return {"disable": True}
        if len(test) < 2:
            fail(f"{where}.test", "has no command")
        out["test"] = test
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in value:
            out[key] = _duration(f"{where}.{key}", value[key])
    if "retries" in value:
        if not isinstance(value["retries"], int) or value["retries"] < 1:
            fail(f"{where}.retries", "must be a positive integer")
        out["retries"] = value["retries"]
    return out


def _depends_on(where, value, services):
    if isinstance(value, list):
        value = {_str(f"{where}[{i}]", v): {} for i, v in enumerate(value)}
    if not isinstance(value, dict):
        fail(where, f"must be a list or a mapping, not {_kind(value)}")
    out = {}
    for name, spec in value.items():
        w = f"{where}.{name}"
        spec = spec or {}
        if not isinstance(spec, dict):
            fail(w, "must be a mapping")
        unknown = set(spec) - {"condition", "required", "restart"}
        if unknown:
            fail(w, f"additional property {sorted(unknown)[0]!r} is not allowed")
        condition = spec.get("condition", "service_started")
        if condition not in CONDITIONS:
            fail(f"{w}.condition", f"must be one of {', '.join(CONDITIONS)}, not {condition!r}")
        required = spec.get("required", True)
        if name not in services and required:
            fail(where, f"depends on undefined service {name!r}")
        entry = {"condition": condition, "required": _bool(f"{w}.required", required)}
        if "restart" in spec:
            entry["restart"] = _bool(f"{w}.restart", spec["restart"])
        out[name] = entry
    return out


def _networks(where, value, declared):
    if isinstance(value, list):
        value = {_str(f"{where}[{i}]", v): None for i, v in enumerate(value)}
    if not isinstance(value, dict):
        fail(where, f"must be a list or a mapping, not {_kind(value)}")
    out = {}
    for name, spec in value.items():
        if name not in declared:
            fail(where, f"service refers to undefined network {name}: declare it under the "
                        f"top-level networks")
        if spec is None:
            out[name] = None
            continue
        if not isinstance(spec, dict):
            fail(f"{where}.{name}", "must be a mapping or null")
        unknown = set(spec) - {"aliases", "ipv4_address", "priority"}
        if unknown:
            fail(f"{where}.{name}", f"additional property {sorted(unknown)[0]!r} is not allowed")
        entry = {}
        if "aliases" in spec:
            entry["aliases"] = _list_of_str(f"{where}.{name}.aliases", spec["aliases"])
        out[name] = entry or None
    if len(out) > 1:
        fail(where, "minirun attaches a container to one network: more than one is not "
                    "supported yet")
    return out


def _deploy(where, value):
    if not isinstance(value, dict):
        fail(where, f"must be a mapping, not {_kind(value)}")
    unknown = set(value) - {"replicas", "resources", "restart_policy", "labels", "mode"}
    if unknown:
        fail(where, f"additional property {sorted(unknown)[0]!r} is not allowed")
    out = {}
    if "replicas" in value:
        if not isinstance(value["replicas"], int) or value["replicas"] < 0:
            fail(f"{where}.replicas", "must be a non-negative integer")
        out["replicas"] = value["replicas"]
    res = value.get("resources")
    if res is not None:
        if not isinstance(res, dict) or set(res) - {"limits", "reservations"}:
            fail(f"{where}.resources", "must be a mapping of limits (and reservations)")
        limits = res.get("limits") or {}
        if not isinstance(limits, dict):
            fail(f"{where}.resources.limits", "must be a mapping")
        unknown = set(limits) - {"cpus", "memory", "pids"}
        if unknown:
            fail(f"{where}.resources.limits", f"additional property {sorted(unknown)[0]!r} is "
                                              f"not allowed")
        out["resources"] = {"limits": {k: (_str(f"{where}.resources.limits.{k}", v)
                                           if k != "pids" else v) for k, v in limits.items()}}
    if "restart_policy" in value:
        out["restart_policy"] = value["restart_policy"]
    if "labels" in value:
        out["labels"] = _mapping(f"{where}.labels", value["labels"])
    return out


def _refs(where, value, declared, kind):
    """secrets/configs of a service: names or {source, target, mode}."""
    if not isinstance(value, list):
        fail(where, f"must be a list, not {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict) or "source" not in item:
            fail(f"{where}[{i}]", "must be a name or a mapping with source")
        if item["source"] not in declared:
            fail(f"{where}[{i}]", f"refers to undefined {kind} {item['source']!r}")
        out.append({k: item[k] for k in ("source", "target", "uid", "gid", "mode") if k in item})
    return out


def normalize_service(name, svc, project_dir, top, environment):
    where = f"services.{name}"
    if not SERVICE_NAME.match(name):
        fail(where, "invalid service name: use letters, digits, '.', '_' and '-'")
    if svc is None:
        svc = {}
    if not isinstance(svc, dict):
        fail(where, f"must be a mapping, not {_kind(svc)}")
    unknown = sorted(set(svc) - SERVICE_KEYS)
    if unknown:
        fail(where, f"additional property {unknown[0]!r} is not allowed")
    out = {}
    w = lambda key: f"{where}.{key}"  # noqa: E731
    if "image" in svc:
        out["image"] = _str(w("image"), svc["image"])
    if "build" in svc:
        b = svc["build"]
        if isinstance(b, str):
            b = {"context": b}
        if not isinstance(b, dict):
            fail(w("build"), f"must be a string or a mapping, not {_kind(b)}")
        unknown = set(b) - {"context", "dockerfile", "args", "target", "labels"}
        if unknown:
            fail(w("build"), f"additional property {sorted(unknown)[0]!r} is not allowed")
        out["build"] = {"context": _abs(project_dir, _str(w("build.context"),
                                                          b.get("context", "."))),
                        "dockerfile": _str(w("build.dockerfile"),
                                           b.get("dockerfile", "Dockerfile"))}
        if "args" in b:
            out["build"]["args"] = _mapping(w("build.args"), b["args"])
        if "target" in b:
            out["build"]["target"] = _str(w("build.target"), b["target"])
    if "image" not in out and "build" not in out:
        fail(where, "has neither an image nor a build context specified: at least one must "
                    "be provided")
    for key in ("command", "entrypoint"):
        if key in svc:
            out[key] = _command(w(key), svc[key])
    env = {}
    if "env_file" in svc:
        files = svc["env_file"]
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list):
            fail(w("env_file"), "must be a string or a list")
        for i, f in enumerate(files):
            required = True
            if isinstance(f, dict):
                required = f.get("required", True)
                f = f.get("path")
            from minirun.compose.loader import parse_env_file

            path = _abs(project_dir, _str(f"{w('env_file')}[{i}]", f))
            if not os.path.exists(path) and not required:
                continue
            env.update(parse_env_file(path))
    if "environment" in svc:
        for k, v in _mapping(w("environment"), svc["environment"]).items():
            if v is None:
                v = environment.get(k)   # KEY alone: from the environment compose runs in
                if v is None:
                    env.pop(k, None)
                    continue
            env[k] = v
    if env or "environment" in svc or "env_file" in svc:
        out["environment"] = env
    if "ports" in svc:
        out["ports"] = _ports(w("ports"), svc["ports"])
    if "expose" in svc:
        out["expose"] = [_str(f"{w('expose')}[{i}]", v) for i, v in
                         enumerate(svc["expose"] if isinstance(svc["expose"], list)
                                   else fail(w("expose"), "must be a list"))]
    if "volumes" in svc:
        out["volumes"] = _volumes(w("volumes"), svc["volumes"], project_dir,
                                  top.get("volumes") or {})
    declared_nets = top.get("networks") or {}
    nets = svc.get("networks")
    out["networks"] = _networks(w("networks"), nets, declared_nets) if nets else \
        {"default": None}
    if "depends_on" in svc:
        out["depends_on"] = _depends_on(w("depends_on"), svc["depends_on"],
                                        top.get("services") or {})
    if "healthcheck" in svc:
        out["healthcheck"] = _healthcheck(w("healthcheck"), svc["healthcheck"])
    if "restart" in svc:
        restart = _str(w("restart"), svc["restart"])
        if not RESTART.match(restart):
            fail(w("restart"), f"invalid restart policy {restart!r}: use no, always, "
                               f"on-failure[:N] or unless-stopped")
        out["restart"] = restart
    if "container_name" in svc:
        cname = _str(w("container_name"), svc["container_name"])
        if not CONTAINER_NAME.match(cname):
            fail(w("container_name"), f"invalid container name {cname!r}")
        out["container_name"] = cname
    for key in ("hostname", "user", "working_dir", "stop_signal", "mem_limit", "cpus",
                "pull_policy"):
        if key in svc:
            out[key] = _str(w(key), svc[key])
    if "working_dir" in out and not out["working_dir"].startswith("/"):
        fail(w("working_dir"), "must be an absolute path")
    if "stop_grace_period" in svc:
        out["stop_grace_period"] = _duration(w("stop_grace_period"), svc["stop_grace_period"])
    for key in ("init", "read_only", "tty", "stdin_open"):
        if key in svc:
            out[key] = _bool(w(key), svc[key])
    if "labels" in svc:
        out["labels"] = {k: ("" if v is None else v)
                         for k, v in _mapping(w("labels"), svc["labels"]).items()}
    for key in ("tmpfs", "cap_add", "cap_drop", "profiles"):
        if key in svc:
            out[key] = _list_of_str(w(key), svc[key])
    if "pids_limit" in svc:
        if not isinstance(svc["pids_limit"], int):
            fail(w("pids_limit"), "must be an integer")
        out["pids_limit"] = svc["pids_limit"]
    if "deploy" in svc:
        out["deploy"] = _deploy(w("deploy"), svc["deploy"])
    if "scale" in svc:
        if not isinstance(svc["scale"], int) or svc["scale"] < 0:
            fail(w("scale"), "must be a non-negative integer")
        out["scale"] = svc["scale"]
    for key in ("secrets", "configs"):
        if key in svc:
            out[key] = _refs(w(key), svc[key], top.get(key) or {}, key[:-1])
    if replicas(out) > 1 and "container_name" in out:
        fail(where, f"container_name {out['container_name']!r} is unique: it cannot have "
                    f"{replicas(out)} replicas")
    return dict(sorted(out.items()))


def replicas(svc):
    if "scale" in svc:
        return svc["scale"]
    return (svc.get("deploy") or {}).get("replicas", 1)


def _top_resources(doc, key, project, external_ok=True):
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        fail(key, f"must be a mapping, not {_kind(value)}")
    out = {}
    for name, spec in value.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            fail(f"{key}.{name}", "must be a mapping or null")
        allowed = {"name", "external", "labels", "driver", "driver_opts"}
        if key == "networks":
            allowed |= {"ipam", "internal", "attachable", "enable_ipv6"}
        unknown = set(spec) - allowed
        if unknown:
            fail(f"{key}.{name}", f"additional property {sorted(unknown)[0]!r} is not allowed")
        entry = {"name": str(spec.get("name") or f"{project}_{name}")}
        if spec.get("external"):
            entry["external"] = True
            entry["name"] = str(spec.get("name") or name)
        if "labels" in spec:
            entry["labels"] = _mapping(f"{key}.{name}.labels", spec["labels"])
        if key == "networks" and spec.get("ipam"):
            entry["ipam"] = spec["ipam"]
        out[name] = entry
    return out


def _files(doc, key, project_dir):
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        fail(key, f"must be a mapping, not {_kind(value)}")
    out = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or "file" not in spec:
            fail(f"{key}.{name}", "only secrets and configs from a file are supported "
                                  "(file: PATH)")
        out[name] = {"file": _abs(project_dir, _str(f"{key}.{name}.file", spec["file"]))}
    return out


def normalize(source):
    """The validated, canonical project document (what `config` prints)."""
    doc = source.doc
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        fail("(root)", f"additional property {unknown[0]!r} is not allowed")
    services = doc.get("services")
    if services is None:
        services = {}
    if not isinstance(services, dict):
        fail("services", f"must be a mapping, not {_kind(services)}")
    top = {"services": services}
    top["volumes"] = _top_resources(doc, "volumes", source.name)
    top["networks"] = _top_resources(doc, "networks", source.name)
    uses_default = any(not (s or {}).get("networks") for s in services.values()
                       if isinstance(s, dict))
    if uses_default and "default" not in top["networks"]:
        top["networks"]["default"] = {"name": f"{source.name}_default"}
    top["secrets"] = _files(doc, "secrets", source.project_dir)
    top["configs"] = _files(doc, "configs", source.project_dir)
    out = {"name": source.name, "services": {}}
    for name in sorted(services):
        out["services"][name] = normalize_service(str(name), services[name],
                                                  source.project_dir, top, source.environment)
    names = {}
    for name, svc in out["services"].items():
        if "container_name" in svc:
            if svc["container_name"] in names:
                fail(f"services.{name}.container_name",
                     f"{svc['container_name']!r} is also the container_name of service "
                     f"{names[svc['container_name']]}")
            names[svc["container_name"]] = name
    dependency_order(out["services"], list(out["services"]))  # cycles are errors
    used_nets = {n for s in out["services"].values() for n in s["networks"]}
    nets = {k: v for k, v in top["networks"].items() if k in used_nets or k != "default"}
    for key, value in (("networks", nets), ("volumes", top["volumes"]),
                       ("secrets", top["secrets"]), ("configs", top["configs"])):
        if value:
            out[key] = value
    return out


def dependency_order(services, wanted):
    """`wanted` and what they depend on, dependencies first; a cycle is an error."""
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = chain[chain.index(name):] + [name]
            raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep, spec in sorted((services[name].get("depends_on") or {}).items()):
            if dep in services:
                visit(dep, chain + [name])
            elif spec.get("required", True):
                raise ComposeError(f"service {name} depends on undefined service {dep}")
        state[name] = "done"
        order.append(name)

    for name in wanted:
        if name not in services:
            raise ComposeError(f"no such service: {name}")
        visit(name, [])
    return order


# --- merging files -------------------------------------------------------------------
_APPEND = {"ports", "expose", "dns", "dns_search", "tmpfs", "cap_add", "cap_drop", "profiles"}
_REPLACE = {"command", "entrypoint"}
_BY_KEY = {"environment", "labels"}


def _as_map(value):
    try:
        return _mapping("merge", value)
    except ComposeError:
        return value


def _keyed(items, key):
    out = {}
    for item in items or []:
        if isinstance(item, str):
            k = item.split(":")[1] if key == "target" and ":" in item else item
            if key == "source":
                k = item
        else:
            k = item.get(key) if isinstance(item, dict) else item
        out[k] = item
    return out


def merge_service(base, over):
    out = dict(base)
    for key, value in over.items():
        if key not in out or key in _REPLACE or value is None:
            out[key] = value
        elif key in _APPEND and isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + [v for v in value if v not in out[key]]
        elif key in _BY_KEY:
            merged = _as_map(out[key])
            extra = _as_map(value)
            out[key] = dict(merged, **extra) if isinstance(merged, dict) and isinstance(
                extra, dict) else value
        elif key == "volumes" and isinstance(value, list) and isinstance(out[key], list):
            merged = _keyed(out[key], "target")
            merged.update(_keyed(value, "target"))
            out[key] = list(merged.values())
        elif key in ("secrets", "configs") and isinstance(value, list):
            merged = _keyed(out[key], "source")
            merged.update(_keyed(value, "source"))
            out[key] = list(merged.values())
        elif key in ("depends_on", "networks"):
            a = {v: None for v in out[key]} if isinstance(out[key], list) else dict(out[key])
            b = {v: None for v in value} if isinstance(value, list) else dict(value)
            a.update(b)
            out[key] = a
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
    return out


def _merge_maps(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_maps(out[k], v) if isinstance(out.get(k), dict) and isinstance(
            v, dict) else v
    return out


def merge(base, over):
    """Two compose documents -> one (the later file wins, by the spec's rules)."""
    out = dict(base)
    for key, value in over.items():
        if key == "services" and isinstance(value, dict) and isinstance(out.get(key), dict):
            services = dict(out[key])
            for name, svc in value.items():
                if isinstance(services.get(name), dict) and isinstance(svc, dict):
                    services[name] = merge_service(services[name], svc)
                else:
                    services[name] = svc
            out[key] = services
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
    return out
