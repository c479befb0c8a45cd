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

from minirun.compose import fields, namespaces
from minirun.compose.fields import fail
from minirun.compose.loader import ComposeError

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "networks", "depends_on", "healthcheck", "restart", "container_name",
    "hostname", "labels", "user", "working_dir", "stop_signal", "stop_grace_period", "init",
    "read_only", "tmpfs", "cap_add", "cap_drop", "deploy", "mem_limit", "cpus", "pids_limit",
    "profiles", "secrets", "configs", "scale", "tty", "stdin_open", "pull_policy",
    "network_mode", "ulimits", "sysctls",
}
TOP_KEYS = {"version", "name", "services", "networks", "volumes", "secrets", "configs"}
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def normalize_service(name, svc, project_dir, top, environment):
    where = f"services.{name}"
    if not SERVICE_NAME.match(name):
        fail(where, "invalid service name: use letters, digits, '.', '_' and '-'")
    if svc is None:
        svc = {}
    if not isinstance(svc, dict):
        fail(where, f"must be a mapping, not {fields.type_name(svc)}")
    unknown = sorted(set(svc) - SERVICE_KEYS)
    if unknown:
        fail(where, f"additional property {unknown[0]!r} is not allowed")
    out = {}
    w = lambda key: f"{where}.{key}"  # noqa: E731
    if "image" in svc:
        out["image"] = fields.string(w("image"), svc["image"])
    if "build" in svc:
        b = svc["build"]
        if isinstance(b, str):
            b = {"context": b}
        if not isinstance(b, dict):
            fail(w("build"), f"must be a string or a mapping, not {fields.type_name(b)}")
        unknown = set(b) - {"context", "dockerfile", "args", "target"}
        if unknown:
            fail(w("build"), f"additional property {sorted(unknown)[0]!r} is not allowed")
        out["build"] = {"context": fields.absolute(project_dir, fields.string(w("build.context"),
                                                          b.get("context", "."))),
                        "dockerfile": fields.string(w("build.dockerfile"),
                                           b.get("dockerfile", "Dockerfile"))}
        if "args" in b:
            out["build"]["args"] = fields.mapping(w("build.args"), b["args"])
        if "target" in b:
            out["build"]["target"] = fields.string(w("build.target"), b["target"])
    if "image" not in out and "build" not in out:
        fail(where, "has neither an image nor a build context specified: at least one must "
                    "be provided")
    for key in ("command", "entrypoint"):
        if key in svc:
            out[key] = fields.command(w(key), svc[key])
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

            path = fields.absolute(project_dir, fields.string(f"{w('env_file')}[{i}]", f))
            if not os.path.exists(path) and not required:
                continue
            env.update(parse_env_file(path))
    if "environment" in svc:
        for k, v in fields.mapping(w("environment"), svc["environment"]).items():
            if v is None:
                v = environment.get(k)   # KEY alone: from the environment compose runs in
                if v is None:
                    env.pop(k, None)
                    continue
            env[k] = v
    if env or "environment" in svc or "env_file" in svc:
        out["environment"] = env
    if "ports" in svc:
        out["ports"] = fields.ports(w("ports"), svc["ports"])
    if "expose" in svc:
        out["expose"] = [fields.string(f"{w('expose')}[{i}]", v) for i, v in
                         enumerate(svc["expose"] if isinstance(svc["expose"], list)
                                   else fail(w("expose"), "must be a list"))]
    if "volumes" in svc:
        out["volumes"] = fields.volumes(w("volumes"), svc["volumes"], project_dir,
                                  top.get("volumes") or {})
    declared_nets = top.get("networks") or {}
    nets = svc.get("networks")
    if "network_mode" in svc:
        if nets:
            fail(where, "service declares mutually exclusive `network_mode` and `networks`")
        out["network_mode"] = namespaces.network_mode(w("network_mode"), svc["network_mode"],
                                                      top.get("services") or {})
    else:
        out["networks"] = fields.networks(w("networks"), nets, declared_nets) if nets else \
            {"default": None}
    if "depends_on" in svc:
        out["depends_on"] = fields.depends_on(w("depends_on"), svc["depends_on"],
                                        top.get("services") or {})
    if out.get("network_mode", "").startswith("service:"):
        # Compose's implicit dependency: that service's container must exist first.
        out.setdefault("depends_on", {}).setdefault(
            out["network_mode"][8:], {"condition": "service_started", "required": True})
    if "ulimits" in svc:
        out["ulimits"] = namespaces.ulimits(w("ulimits"), svc["ulimits"])
    if "sysctls" in svc:
        out["sysctls"] = namespaces.sysctls(w("sysctls"), svc["sysctls"])
    if "healthcheck" in svc:
        out["healthcheck"] = fields.healthcheck(w("healthcheck"), svc["healthcheck"])
    if "restart" in svc:
        restart = fields.string(w("restart"), svc["restart"])
        if not RESTART.match(restart):
            fail(w("restart"), f"invalid restart policy {restart!r}: use no, always, "
                               f"on-failure[:N] or unless-stopped")
        out["restart"] = restart
    if "container_name" in svc:
        cname = fields.string(w("container_name"), svc["container_name"])
        if not CONTAINER_NAME.match(cname):
            fail(w("container_name"), f"invalid container name {cname!r}")
        out["container_name"] = cname
    for key in ("hostname", "user", "working_dir", "stop_signal", "mem_limit", "cpus",
                "pull_policy"):
        if key in svc:
            out[key] = fields.string(w(key), svc[key])
    if "working_dir" in out and not out["working_dir"].startswith("/"):
        fail(w("working_dir"), "must be an absolute path")
    if "stop_grace_period" in svc:
        out["stop_grace_period"] = fields.duration(w("stop_grace_period"), svc["stop_grace_period"])
    for key in ("init", "read_only", "tty", "stdin_open"):
        if key in svc:
            out[key] = fields.boolean(w(key), svc[key])
    if "labels" in svc:
        out["labels"] = {k: ("" if v is None else v)
                         for k, v in fields.mapping(w("labels"), svc["labels"]).items()}
    for key in ("tmpfs", "cap_add", "cap_drop", "profiles"):
        if key in svc:
            out[key] = fields.list_of_str(w(key), svc[key])
    if "pids_limit" in svc:
        if not isinstance(svc["pids_limit"], int):
            fail(w("pids_limit"), "must be an integer")
        out["pids_limit"] = svc["pids_limit"]
    if "deploy" in svc:
        out["deploy"] = fields.deploy(w("deploy"), svc["deploy"])
    if "scale" in svc:
        if not isinstance(svc["scale"], int) or svc["scale"] < 0:
            fail(w("scale"), "must be a non-negative integer")
        out["scale"] = svc["scale"]
    for key in ("secrets", "configs"):
        if key in svc:
            out[key] = fields.refs(w(key), svc[key], top.get(key) or {}, key[:-1])
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
        fail(key, f"must be a mapping, not {fields.type_name(value)}")
    out = {}
    for name, spec in value.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            fail(f"{key}.{name}", "must be a mapping or null")
        # attachable: every minirun network is; the rest is not run here, so refused
        allowed = {"name", "external", "labels", "driver"}
        if key == "networks":
            allowed |= {"ipam", "attachable"}
        unknown = set(spec) - allowed
        if unknown:
            fail(f"{key}.{name}", f"additional property {sorted(unknown)[0]!r} is not allowed")
        driver = spec.get("driver")
        if driver not in (None, "bridge" if key == "networks" else "local"):
            fail(f"{key}.{name}.driver", f"{driver!r} is not available here (only "
                                         f"{'bridge' if key == 'networks' else 'local'})")
        entry = {"name": str(spec.get("name") or f"{project}_{name}")}
        if spec.get("external"):
            entry["external"] = True
            entry["name"] = str(spec.get("name") or name)
        if "labels" in spec:
            entry["labels"] = fields.mapping(f"{key}.{name}.labels", spec["labels"])
        if key == "networks" and spec.get("ipam"):
            entry["ipam"] = spec["ipam"]
        out[name] = entry
    return out


def _files(doc, key, project_dir):
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        fail(key, f"must be a mapping, not {fields.type_name(value)}")
    out = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or "file" not in spec:
            fail(f"{key}.{name}", "only secrets and configs from a file are supported "
                                  "(file: PATH)")
        path = fields.string(f"{key}.{name}.file", spec["file"])
        out[name] = {"file": fields.absolute(project_dir, path)}
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
        fail("services", f"must be a mapping, not {fields.type_name(services)}")
    top = {"services": services}
    top["volumes"] = _top_resources(doc, "volumes", source.name)
    top["networks"] = _top_resources(doc, "networks", source.name)
    uses_default = any(not (s or {}).get("networks") and "network_mode" not in (s or {})
                       for s in services.values() if isinstance(s, dict))
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
    used_nets = {n for s in out["services"].values() for n in s.get("networks", ())}
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
        return fields.mapping("merge", value)
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
