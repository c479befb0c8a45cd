"""The Compose keys one by one: type checks and the canonical form of each
(ports and volumes in long syntax, maps for environment/labels, ...).  Each
error names where it is: `services.web.ports[0]: invalid port '80:abc'`."""
import os
import re
import shlex

from minirun.compose.loader import ComposeError

DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^\d+$")
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def fail(where, message):
    raise ComposeError(f"{where}: {message}")


# --- small type checks --------------------------------------------------------------
def string(where, value, allow_number=True):
    if isinstance(value, bool) or value is None:
        fail(where, f"must be a string, not {type_name(value)}")
    if isinstance(value, (int, float)) and allow_number:
        return str(value)
    if not isinstance(value, str):
        fail(where, f"must be a string, not {type_name(value)}")
    return value


def type_name(value):
    return {dict: "a mapping", list: "a list", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number", str: "a string"}.get(type(value), "a value")


def boolean(where, value):
    if not isinstance(value, bool):
        fail(where, f"must be a boolean (true or false), not {type_name(value)}")
    return value


def list_of_str(where, value):
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        fail(where, f"must be a list of strings, not {type_name(value)}")
    return [string(f"{where}[{i}]", v) for i, v in enumerate(value)]


def command(where, value):
    """String (shell-split, as Compose does) or list."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            fail(where, f"cannot split {value!r}: {e}")
    if isinstance(value, list):
        return [string(f"{where}[{i}]", v) for i, v in enumerate(value)]
    fail(where, f"must be a string or a list, not {type_name(value)}")


def duration(where, value):
    text = string(where, value)
    if not DURATION.match(text):
        fail(where, f"invalid duration {text!r}: use e.g. 10s, 1m30s, 500ms")
    return text


def mapping(where, value, list_sep="="):
    """A map, or a list of KEY=VALUE (KEY alone: null)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                fail(f"{where}.{k}", f"must be a string, number, boolean or null, not "
                                     f"{type_name(v)}")
            out[str(k)] = _scalar(v)
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            item = string(f"{where}[{i}]", item)
            key, sep, val = item.partition(list_sep)
            if not key:
                fail(f"{where}[{i}]", f"empty key in {item!r}")
            out[key] = val if sep else None
        return out
    fail(where, f"must be a mapping or a list, not {type_name(value)}")


def _scalar(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def absolute(project_dir, path):
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(project_dir, path))


# --- ports -----------------------------------------------------------------------------
_PORT_SHORT = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<published>\d+(?:-\d+)?)?:)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$")


def ports(where, value):
    if not isinstance(value, list):
        fail(where, f"must be a list, not {type_name(value)}")
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
                entry["host_ip"] = string(f"{w}.host_ip", item["host_ip"])
            entry["protocol"] = item.get("protocol", "tcp")
            if entry["protocol"] not in ("tcp", "udp"):
                fail(f"{w}.protocol", f"invalid protocol {entry['protocol']!r}")
            out.append(entry)
            continue
        text = string(w, item)
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
def volumes(where, value, project_dir, declared):
    if not isinstance(value, list):
        fail(where, f"must be a list, not {type_name(value)}")
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
                entry["source"] = absolute(project_dir, string(f"{w}.source", source))
            elif kind == "volume" and source:
                entry["source"] = string(f"{w}.source", source)
            elif kind == "tmpfs" and source:
                fail(w, "source is not allowed for tmpfs")
            entry["target"] = _target(f"{w}.target", item["target"])
            if item.get("read_only"):
                entry["read_only"] = boolean(f"{w}.read_only", item["read_only"])
            for sub in ("bind", "volume", "tmpfs"):
                if sub in item:
                    if not isinstance(item[sub], dict):
                        fail(f"{w}.{sub}", "must be a mapping")
                    entry[sub] = dict(item[sub])
            if kind == "bind":
                entry.setdefault("bind", {}).setdefault("create_host_path", False)
            out.append(entry)
            continue
        text = string(w, item)
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
            entry = {"type": "bind", "source": absolute(project_dir, source),
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
    text = string(where, value)
    if not text.startswith("/"):
        fail(where, f"the container path {text!r} must be absolute")
    if os.path.normpath(text) == "/":
        fail(where, "the container path can't be /")
    return os.path.normpath(text)


# --- the rest ---------------------------------------------------------------------
def healthcheck(where, value):
    if not isinstance(value, dict):
        fail(where, f"must be a mapping, not {type_name(value)}")
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
        test = list_of_str(f"{where}.test", test)
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            fail(f"{where}.test", "must start with CMD, CMD-SHELL or NONE (or be a string)")
        if test[0] == "NONE":
            return {"disable": True}
        if len(test) < 2:
            fail(f"{where}.test", "has no command")
        out["test"] = test
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in value:
            out[key] = duration(f"{where}.{key}", value[key])
    if "retries" in value:
        if not isinstance(value["retries"], int) or value["retries"] < 1:
            fail(f"{where}.retries", "must be a positive integer")
        out["retries"] = value["retries"]
    return out


def depends_on(where, value, services):
    if isinstance(value, list):
        value = {string(f"{where}[{i}]", v): {} for i, v in enumerate(value)}
    if not isinstance(value, dict):
        fail(where, f"must be a list or a mapping, not {type_name(value)}")
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
        entry = {"condition": condition, "required": boolean(f"{w}.required", required)}
        if "restart" in spec:
            entry["restart"] = boolean(f"{w}.restart", spec["restart"])
        out[name] = entry
    return out


def networks(where, value, declared):
    if isinstance(value, list):
        value = {string(f"{where}[{i}]", v): None for i, v in enumerate(value)}
    if not isinstance(value, dict):
        fail(where, f"must be a list or a mapping, not {type_name(value)}")
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
        unknown = set(spec) - {"aliases", "priority"}   # priority: read, not used
        if unknown:
            fail(f"{where}.{name}", f"additional property {sorted(unknown)[0]!r} is not allowed")
        entry = {}
        if "aliases" in spec:
            entry["aliases"] = list_of_str(f"{where}.{name}.aliases", spec["aliases"])
        out[name] = entry or None
    return out


def deploy(where, value):
    if not isinstance(value, dict):
        fail(where, f"must be a mapping, not {type_name(value)}")
    unknown = set(value) - {"replicas", "resources", "restart_policy", "mode"}
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
        out["resources"] = {"limits": {k: (string(f"{where}.resources.limits.{k}", v)
                                           if k != "pids" else v) for k, v in limits.items()}}
    if value.get("mode", "replicated") != "replicated":
        fail(f"{where}.mode", f"{value['mode']!r} is not available here (only replicated)")
    policy = value.get("restart_policy")
    if policy is not None:
        w = f"{where}.restart_policy"
        if not isinstance(policy, dict) or set(policy) - {"condition", "max_attempts", "delay",
                                                          "window"}:
            fail(w, "must be a mapping of condition, max_attempts (delay, window)")
        condition = policy.get("condition", "any")
        if condition not in ("none", "on-failure", "any"):
            fail(f"{w}.condition", f"must be none, on-failure or any, not {condition!r}")
        entry = {"condition": condition}
        if "max_attempts" in policy:
            if not isinstance(policy["max_attempts"], int) or policy["max_attempts"] < 0:
                fail(f"{w}.max_attempts", "must be a non-negative integer")
            entry["max_attempts"] = policy["max_attempts"]
        out["restart_policy"] = entry
    return out


def restart_from_policy(policy):
    """deploy.restart_policy -> the restart policy string (what Compose runs)."""
    condition = policy.get("condition", "any")
    if condition == "none":
        return "no"
    if condition == "on-failure":
        n = policy.get("max_attempts")
        return f"on-failure:{n}" if n else "on-failure"
    return "always"


def refs(where, value, declared, kind):
    """secrets/configs of a service: names or {source, target, mode}."""
    if not isinstance(value, list):
        fail(where, f"must be a list, not {type_name(value)}")
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
