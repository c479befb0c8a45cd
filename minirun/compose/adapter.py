"""One compose service -> the front end's create options.

This is the only place that knows both the Compose model (model.py's
canonical service) and the front end's RunOptions: when the front end's API
changes, the fix is here.
"""
import math
import shlex

LABEL = "com.docker.compose"


def volume_name(config, name):
    return config["volumes"][name]["name"]


def network_name(config, name):
    return config["networks"][name]["name"]


def image_name(project, service_name, svc):
    """The image a service runs: its `image`, or what `build` makes (Compose's
    <project>-<service> when no image is named)."""
    return svc.get("image") or f"{project}-{service_name}"


def _mount_flags(config, svc):
    """(-v strings, --mount strings, --tmpfs strings) for volumes, secrets, configs, tmpfs."""
    volumes, mounts, tmpfs = [], [], list(svc.get("tmpfs") or [])
    for v in svc.get("volumes") or []:
        ro = v.get("read_only", False)
        if v["type"] == "tmpfs":
            size = (v.get("tmpfs") or {}).get("size")
            tmpfs.append(v["target"] + (f":size={size}" if size else ""))
        elif v["type"] == "bind":
            if (v.get("bind") or {}).get("create_host_path", True):
                volumes.append(f"{v['source']}:{v['target']}{':ro' if ro else ''}")
            else:   # long syntax: a missing host path is an error, as in Compose
                mounts.append(f"type=bind,source={v['source']},target={v['target']}"
                              + (",readonly" if ro else ""))
        elif v.get("source"):
            modes = ["ro"] if ro else []
            if (v.get("volume") or {}).get("nocopy"):
                modes.append("nocopy")
            volumes.append(f"{volume_name(config, v['source'])}:{v['target']}"
                           + (":" + ",".join(modes) if modes else ""))
        else:
            volumes.append(v["target"])     # anonymous
    for ref in svc.get("secrets") or []:
        target = ref.get("target") or ref["source"]
        target = target if target.startswith("/") else f"/run/secrets/{target}"
        volumes.append(f"{config['secrets'][ref['source']]['file']}:{target}:ro")
    for ref in svc.get("configs") or []:
        target = ref.get("target") or "/" + ref["source"]
        volumes.append(f"{config['configs'][ref['source']]['file']}:{target}:ro")
    return volumes, mounts, tmpfs


def _publish(port):
    out = ""
    if port.get("host_ip"):
        ip = port["host_ip"]
        out += (f"[{ip}]" if ":" in ip else ip) + ":"
    if port.get("published") or out:
        out += f"{port.get('published', '')}:"
    return f"{out}{port['target']}/{port.get('protocol', 'tcp')}"


def _health(svc):
    h = svc.get("healthcheck")
    if h is None:
        return {}
    if h.get("disable"):
        return {"no_healthcheck": True}
    out = {}
    test = h.get("test")
    if test:
        # The front end runs a health command with /bin/sh -c; CMD's argv is quoted for it.
        out["health_cmd"] = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
    for key in ("interval", "timeout", "start_period"):
        if key in h:
            out[f"health_{key}"] = h[key]
    if "retries" in h:
        out["health_retries"] = h["retries"]
    return out


def _restart(svc):
    from minirun.compose.fields import restart_from_policy

    policy = (svc.get("deploy") or {}).get("restart_policy")
    if "restart" in svc or policy is None:
        return svc.get("restart", "no")
    return restart_from_policy(policy)


def run_options(config, service_name, *, name, labels, command=None, entrypoint=None,
                extra_env=(), publish=True, tty=None, interactive=None, auto_remove=False):
    """The front end's RunOptions for one container of a service (validated:
    BadOption before anything exists)."""
    from minirun.frontend.options import parse_duration
    from minirun.frontend.runopts import RunOptions

    svc = config["services"][service_name]
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    cmd = list(svc.get("command") or []) if command is None else list(command)
    ep = svc.get("entrypoint") if entrypoint is None else entrypoint
    ep_flag = None
    if ep is not None:
        # --entrypoint takes one word; the rest of a compose entrypoint comes before
        # the command (setting an entrypoint drops the image's CMD, as in Docker).
        ep_flag = ep[0] if ep else ""
        cmd = list(ep[1:]) + cmd
    from minirun.compose import namespaces

    volumes, mounts, tmpfs = _mount_flags(config, svc)
    mode = svc.get("network_mode")
    net = None if mode else next(iter(svc["networks"]))
    stop_timeout = None
    if "stop_grace_period" in svc:
        stop_timeout = math.ceil(parse_duration(svc["stop_grace_period"]))
    env = [k if v is None else f"{k}={v}" for k, v in (svc.get("environment") or {}).items()]
    opts = RunOptions.from_flags(
        image_name(config["name"], service_name, svc), cmd, name=name, entrypoint=ep_flag,
        env=env + list(extra_env), volumes=volumes, mounts=mounts, tmpfs=tmpfs,
        publish=[_publish(p) for p in svc.get("ports") or []] if publish else (),
        expose=[e if "/" in e else f"{e}/tcp" for e in svc.get("expose") or []],
        network=namespaces.network_flag(config, mode) if mode else network_name(config, net),
        hostname=svc.get("hostname"),
        user=svc.get("user"), workdir=svc.get("working_dir"),
        read_only=svc.get("read_only", False),
        memory=limits.get("memory") or svc.get("mem_limit"),
        cpus=limits.get("cpus") or svc.get("cpus"),
        pids_limit=limits.get("pids") or svc.get("pids_limit"),
        cap_add=svc.get("cap_add") or (), cap_drop=svc.get("cap_drop") or (),
        ulimits=namespaces.ulimit_flags(svc.get("ulimits")),
        sysctls=[f"{k}={v}" for k, v in (svc.get("sysctls") or {}).items()],
        restart="no" if auto_remove else _restart(svc),
        init=svc.get("init", False),
        tty=svc.get("tty", False) if tty is None else tty,
        interactive=svc.get("stdin_open", False) if interactive is None else interactive,
        auto_remove=auto_remove,
        labels=[f"{k}={v}" for k, v in {**(svc.get("labels") or {}), **labels}.items()],
        stop_signal=svc.get("stop_signal"), stop_timeout=stop_timeout, **_health(svc))
    # Found by these names on each network (the embedded DNS): the service, and
    # the aliases given for that network; the container's own name comes anyway.
    def aliases(key):
        return [service_name, *((svc["networks"][key] or {}).get("aliases") or [])]

    if mode:    # no network of the project's: no aliases on it
        return opts
    opts.network_aliases = aliases(net)
    opts.extra_networks = [(network_name(config, key), aliases(key))
                           for key in list(svc["networks"])[1:]]
    return opts
