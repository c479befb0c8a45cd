"""A PodSpec checked and normalised (pure), for objects.py.

    {"containers": [container...], "restartPolicy": "Always"|"OnFailure"|"Never",
     "volumes": {name: {"type": "emptyDir"|"hostPath"|"configMap"|"secret", ...}},
     "hostname": str|None, "terminationGracePeriodSeconds": int}

A container: name, image, command, args, env (list of {name, value} or
{name, ref: {kind, name, key, optional}}), envFrom ({kind, name, prefix}),
ports ({containerPort, hostPort, hostIP, protocol, name}), volumeMounts
({name, mountPath, readOnly, subPath}), limits ({cpu: cores, memory: bytes}),
liveness and readiness (None or {exec | httpGet | tcpSocket, initialDelaySeconds,
periodSeconds, timeoutSeconds, failureThreshold, successThreshold}), workingDir.
"""
import posixpath

from minirun.kube import objects as o


def pod_spec(where, spec, path):
    spec = where.mapping(spec, path, required=True)
    policy = spec.get("restartPolicy") or "Always"
    if policy not in o.RESTART_POLICIES:
        where.fail(f"{path}.restartPolicy", f"Unsupported value: {policy!r}: supported values: "
                                            "\"Always\", \"OnFailure\", \"Never\"")
    volumes = {}
    for i, v in enumerate(where.sequence(spec.get("volumes"), f"{path}.volumes")):
        vpath = f"{path}.volumes[{i}]"
        v = where.mapping(v, vpath, required=True)
        name = where.name(v.get("name"), f"{vpath}.name")
        if name in volumes:
            where.fail(f"{vpath}.name", f"Duplicate value: {name!r}")
        volumes[name] = _volume(where, v, vpath)
    raw = where.sequence(spec.get("containers"), f"{path}.containers", required=True)
    if not raw:
        where.fail(f"{path}.containers", "Required value")
    containers, names, host_ports = [], set(), set()
    for i, c in enumerate(raw):
        c = _container(where, c, f"{path}.containers[{i}]", volumes)
        if c["name"] in names:
            where.fail(f"{path}.containers[{i}].name", f"Duplicate value: {c['name']!r}")
        names.add(c["name"])
        for p in c["ports"]:
            key = (p["hostPort"], p["protocol"])
            if p["hostPort"] and key in host_ports:
                where.fail(f"{path}.containers[{i}].ports", f"Duplicate value: hostPort "
                                                            f"{p['hostPort']}/{p['protocol']}")
            host_ports.add(key)
        containers.append(c)
    hostname = spec.get("hostname")
    if hostname is not None:
        hostname = where.name(hostname, f"{path}.hostname")
    if spec.get("initContainers"):
        where.fail(f"{path}.initContainers", "not supported by kube play")
    grace = where.integer(spec.get("terminationGracePeriodSeconds"),
                          f"{path}.terminationGracePeriodSeconds", default=30, low=0)
    return {"containers": containers, "restartPolicy": policy, "volumes": volumes,
            "hostname": hostname, "terminationGracePeriodSeconds": grace}


def _volume(where, v, path):
    kinds = [k for k in ("emptyDir", "hostPath", "configMap", "secret") if k in v]
    if len(kinds) != 1:
        other = [k for k in v if k != "name"]
        where.fail(path, "must specify exactly one of emptyDir, hostPath, configMap, secret"
                         + (f" ({', '.join(other)} is not supported)" if other else ""))
    kind = kinds[0]
    body = where.mapping(v[kind], f"{path}.{kind}")
    if kind == "emptyDir":
        medium = body.get("medium") or ""
        if medium not in ("", "Memory"):
            where.fail(f"{path}.emptyDir.medium", f"Unsupported value: {medium!r}")
        size = body.get("sizeLimit")
        return {"type": kind, "medium": medium,
                "sizeLimit": int(o.quantity(size, where, f"{path}.emptyDir.sizeLimit"))
                if size is not None else None}
    if kind == "hostPath":
        host = where.string(body.get("path"), f"{path}.hostPath.path", required=True)
        if not host.startswith("/"):
            where.fail(f"{path}.hostPath.path", "must be an absolute path")
        htype = body.get("type") or ""
        if htype not in ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File"):
            where.fail(f"{path}.hostPath.type", f"Unsupported value: {htype!r}")
        return {"type": kind, "path": posixpath.normpath(host), "hostType": htype}
    ref_field = "name" if kind == "configMap" else "secretName"
    ref = where.name(body.get(ref_field), f"{path}.{kind}.{ref_field}", o.DNS1123_SUBDOMAIN, 253)
    items = []
    for j, item in enumerate(where.sequence(body.get("items"), f"{path}.{kind}.items")):
        ipath = f"{path}.{kind}.items[{j}]"
        item = where.mapping(item, ipath, required=True)
        key = where.string(item.get("key"), f"{ipath}.key", required=True)
        rel = where.string(item.get("path"), f"{ipath}.path", required=True)
        if rel.startswith("/") or ".." in rel.split("/"):
            where.fail(f"{ipath}.path", "must be a relative path without '..'")
        items.append({"key": key, "path": rel})
    mode = where.integer(body.get("defaultMode"), f"{path}.{kind}.defaultMode",
                         default=0o644, low=0, high=0o777)
    return {"type": kind, "ref": ref, "items": items, "defaultMode": mode,
            "optional": bool(body.get("optional"))}


def _container(where, c, path, volumes):
    c = where.mapping(c, path, required=True)
    out = {"name": where.name(c.get("name"), f"{path}.name"),
           "image": where.string(c.get("image"), f"{path}.image", required=True),
           "command": where.strings(c.get("command"), f"{path}.command"),
           "args": where.strings(c.get("args"), f"{path}.args"),
           "workingDir": where.string(c.get("workingDir"), f"{path}.workingDir")}
    out["env"] = [_env(where, e, f"{path}.env[{i}]")
                  for i, e in enumerate(where.sequence(c.get("env"), f"{path}.env"))]
    out["envFrom"] = [_env_from(where, e, f"{path}.envFrom[{i}]")
                      for i, e in enumerate(where.sequence(c.get("envFrom"), f"{path}.envFrom"))]
    out["ports"] = []
    for i, p in enumerate(where.sequence(c.get("ports"), f"{path}.ports")):
        ppath = f"{path}.ports[{i}]"
        p = where.mapping(p, ppath, required=True)
        cport = where.integer(p.get("containerPort"), f"{ppath}.containerPort", low=1, high=65535)
        if cport is None:
            where.fail(f"{ppath}.containerPort", "Required value")
        out["ports"].append({
            "containerPort": cport, "name": p.get("name") or "",
            "hostPort": where.integer(p.get("hostPort"), f"{ppath}.hostPort", default=0,
                                      low=0, high=65535),
            "hostIP": where.string(p.get("hostIP"), f"{ppath}.hostIP"),
            "protocol": o._protocol(where, p.get("protocol"), f"{ppath}.protocol")})
    out["volumeMounts"] = []
    for i, m in enumerate(where.sequence(c.get("volumeMounts"), f"{path}.volumeMounts")):
        mpath = f"{path}.volumeMounts[{i}]"
        m = where.mapping(m, mpath, required=True)
        name = where.string(m.get("name"), f"{mpath}.name", required=True)
        if name not in volumes:
            where.fail(f"{mpath}.name", f"Not found: {name!r}")
        dest = where.string(m.get("mountPath"), f"{mpath}.mountPath", required=True)
        if not dest.startswith("/"):
            where.fail(f"{mpath}.mountPath", "must be an absolute path")
        sub = where.string(m.get("subPath"), f"{mpath}.subPath") or ""
        if sub.startswith("/") or ".." in sub.split("/"):
            where.fail(f"{mpath}.subPath", "must be a relative path without '..'")
        out["volumeMounts"].append({"name": name, "mountPath": posixpath.normpath(dest),
                                    "readOnly": bool(m.get("readOnly")), "subPath": sub})
    resources = where.mapping(c.get("resources"), f"{path}.resources")
    limits = where.mapping(resources.get("limits"), f"{path}.resources.limits")
    out["limits"] = {
        "cpu": o.quantity(limits["cpu"], where, f"{path}.resources.limits.cpu")
        if "cpu" in limits else None,
        "memory": int(o.quantity(limits["memory"], where, f"{path}.resources.limits.memory"))
        if "memory" in limits else None}
    out["liveness"] = _probe(where, c.get("livenessProbe"), f"{path}.livenessProbe", out)
    if out["liveness"] and out["liveness"]["successThreshold"] != 1:
        where.fail(f"{path}.livenessProbe.successThreshold", "Invalid value: "
                   f"{out['liveness']['successThreshold']}: must be 1")
    out["readiness"] = _probe(where, c.get("readinessProbe"), f"{path}.readinessProbe", out)
    return out


def _env(where, e, path):
    e = where.mapping(e, path, required=True)
    name = where.string(e.get("name"), f"{path}.name", required=True)
    if not o.ENV_NAME.match(name):
        where.fail(f"{path}.name", f"Invalid value: {name!r}: a valid environment variable "
                                   "name must consist of alphabetic characters, digits, '_', "
                                   "'-', or '.', and must not start with a digit")
    if "valueFrom" in e:
        source = where.mapping(e["valueFrom"], f"{path}.valueFrom", required=True)
        for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if field in source:
                ref = where.mapping(source[field], f"{path}.valueFrom.{field}", required=True)
                return {"name": name, "ref": {
                    "kind": kind,
                    "name": where.string(ref.get("name"), f"{path}.valueFrom.{field}.name",
                                         required=True),
                    "key": where.string(ref.get("key"), f"{path}.valueFrom.{field}.key",
                                        required=True),
                    "optional": bool(ref.get("optional"))}}
        where.fail(f"{path}.valueFrom", "only configMapKeyRef and secretKeyRef are supported")
    value = e.get("value", "")
    if isinstance(value, (dict, list)) or value is None:
        where.fail(f"{path}.value", "must be a string")
    if isinstance(value, bool):
        value = "true" if value else "false"
    return {"name": name, "value": str(value)}


def _env_from(where, e, path):
    e = where.mapping(e, path, required=True)
    for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        if field in e:
            ref = where.mapping(e[field], f"{path}.{field}", required=True)
            return {"kind": kind, "prefix": where.string(e.get("prefix"), f"{path}.prefix") or "",
                    "name": where.string(ref.get("name"), f"{path}.{field}.name", required=True),
                    "optional": bool(ref.get("optional"))}
    where.fail(path, "must have configMapRef or secretRef")


def _probe(where, p, path, container):
    if p is None:
        return None
    p = where.mapping(p, path)
    out = {"initialDelaySeconds": where.integer(p.get("initialDelaySeconds"),
                                                f"{path}.initialDelaySeconds", 0, low=0),
           "periodSeconds": where.integer(p.get("periodSeconds"), f"{path}.periodSeconds",
                                          10, low=1),
           "timeoutSeconds": where.integer(p.get("timeoutSeconds"), f"{path}.timeoutSeconds",
                                           1, low=1),
           "failureThreshold": where.integer(p.get("failureThreshold"),
                                             f"{path}.failureThreshold", 3, low=1),
           "successThreshold": where.integer(p.get("successThreshold"),
                                             f"{path}.successThreshold", 1, low=1)}
    if "exec" in p:
        command = where.strings(where.mapping(p["exec"], f"{path}.exec").get("command"),
                                f"{path}.exec.command")
        if not command:
            where.fail(f"{path}.exec.command", "Required value")
        out["exec"] = command
    elif "httpGet" in p:
        get = where.mapping(p["httpGet"], f"{path}.httpGet")
        port = _probe_port(where, get.get("port"), f"{path}.httpGet.port", container)
        if (get.get("scheme") or "HTTP") != "HTTP":
            where.fail(f"{path}.httpGet.scheme", "only HTTP is supported")
        out["httpGet"] = {"path": where.string(get.get("path"), f"{path}.httpGet.path") or "/",
                          "port": port}
    elif "tcpSocket" in p:
        sock = where.mapping(p["tcpSocket"], f"{path}.tcpSocket")
        if sock.get("host"):
            where.fail(f"{path}.tcpSocket.host", "only the pod's own address is supported")
        out["tcpSocket"] = {"port": _probe_port(where, sock.get("port"),
                                                f"{path}.tcpSocket.port", container)}
    else:
        where.fail(path, "must have exec, httpGet or tcpSocket (grpc is not supported)")
    return out


def _probe_port(where, port, path, container):
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, str) and not port.isdigit():
        named = [x["containerPort"] for x in container["ports"] if x["name"] == port]
        if not named:
            where.fail(path, f"Invalid value: {port!r}: no container port of that name")
        port = named[0]
    port = where.integer(int(port) if isinstance(port, str) else port, path, low=1, high=65535)
    if port is None:
        where.fail(path, "Required value")
    return port
