"""The one place where kube meets the Docker-like front end.

`run_options()` maps a Kubernetes container (as podspec.py normalises it) to
the front end's RunOptions; the other functions are the few front-end calls
kube makes (create+start, state, address, remove, exec, kill).  When the front
end's API changes, this module is what changes.
"""
import os
import signal
import subprocess
import sys

from minirun.errors import MinirunError

# Kubernetes restartPolicy -> Docker restart policy (the monitor restarts containers).
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
# The pods' network: user-defined, so the front end serves the embedded resolver
# (127.0.0.11) in every pod, where the Services' names are published.
NETWORK = "minirun-kube"


def run_options(container, *, name, labels, env, mounts, network=None, hostname=None,
                restart="Always", grace=30, dns_search=(), dns_options=()):
    """A Kubernetes container -> RunOptions.

    container  podspec's dict: image, command (ENTRYPOINT), args (CMD), workingDir,
               ports (published when they have a hostPort), limits
    env        ["K=V"] already resolved (values, ConfigMap/Secret refs)
    mounts     [(host_path, container_path, read_only)]
    grace      the pod's terminationGracePeriodSeconds
    network    None for the pod's infra container (it owns the netns and IPC namespace,
               the ports, the hostname, the resolv.conf); "container:<infra id>" for the others
    dns_*      the infra's resolv.conf search domains and options (the pod's containers
               share its /etc files)
    """
    from minirun.frontend import options
    from minirun.frontend.runopts import Limits, Mount, PortMapping, RunOptions

    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    # Kubernetes: command replaces ENTRYPOINT (and drops CMD), args replaces CMD.
    entrypoint = command[0] if command else None
    argv = command[1:] + args if command else args
    limits = container.get("limits") or {}
    cpus = None
    if limits.get("cpu"):
        # at most the host's CPUs: a limit above them limits nothing
        cpus = options.parse_cpus(str(min(limits["cpu"], os.cpu_count() or 1)))
    ports = []
    if network is None:
        for p in container.get("ports") or ():
            if p.get("hostPort"):
                ports.append(PortMapping(container_port=p["containerPort"],
                                         host_port=p["hostPort"],
                                         host_ip=p.get("hostIP") or "0.0.0.0",
                                         proto=p["protocol"].lower()))
    return RunOptions(
        image=container["image"], command=argv, entrypoint=entrypoint, name=name, env=list(env),
        mounts=[Mount(kind="bind", source=src, destination=dst, read_only=ro)
                for src, dst, ro in mounts],
        ports=ports, network=network or NETWORK, hostname=hostname if network is None else None,
        dns_search=list(dns_search), dns_options=list(dns_options),
        ipc=network or "",             # the pod's containers share the infra's IPC too
        workdir=container.get("workingDir"),
        limits=Limits(memory=limits.get("memory"), cpus=cpus),
        restart=options.parse_restart(RESTART[restart]),
        stop_timeout=grace,            # `minirun stop`: SIGTERM, SIGKILL after the grace period
        init=network is None, labels=dict(labels))


def infra_command():
    """The infra container's program: catatonit's pause mode (-P), from the static
    init the front end mounts at /dev/init for --init, so the pod's image needs
    nothing for it; with tini (no pause mode), `sleep` from the image."""
    from minirun.frontend.bundle import INIT_PATH, find_init

    try:
        if os.path.basename(find_init()) == "catatonit":
            return [INIT_PATH, "-P"]
    except MinirunError:
        pass
    return ["sleep", "2147483647"]


def ensure_image(fe, ref):
    """The image in the store (pulled if missing), before any pod is made."""
    from minirun.frontend import lifecycle

    lifecycle.resolve_image(fe, ref)


def ensure_network(fe):
    """The pods' network, made on first use (also by a concurrent creator)."""
    from minirun import network

    if network.Store(fe.root).network(NETWORK) is None:
        try:
            network.create_network(NETWORK, root=fe.root)
        except MinirunError:
            if network.Store(fe.root).network(NETWORK) is None:
                raise


def remove_network(fe):
    """The pods' network goes with the last pod (kept while anything else uses it)."""
    from minirun import network

    if network.Store(fe.root).network(NETWORK) is not None:
        try:
            network.remove_network(NETWORK, root=fe.root)
        except MinirunError:
            pass   # a container someone else attached to it: left as it is


def create_and_start(fe, opts):
    """Create and start a container; its id.  Nothing is left if it fails."""
    from minirun.frontend import lifecycle

    rec = lifecycle.create(fe, opts)
    cid = rec["Id"]
    try:
        lifecycle.start(fe, cid)
    except BaseException:
        remove(fe, cid)
        raise
    return cid


def state(fe, cid):
    """"running", "exited", "restarting", ... or None when the container is gone."""
    from minirun.frontend import lifecycle

    if not os.path.isdir(fe.record_dir(cid)):
        return None
    try:
        rec = fe.load(cid)
    except MinirunError:   # removed meanwhile
        return None
    return lifecycle.current_state(fe, rec)


def address(fe, cid):
    """The pod's IP: its infra container's address on the pods' network (None if none)."""
    from minirun import network

    ep = network.endpoint(cid, root=fe.root)
    return ep.get("ip") if ep else None


def pid(fe, cid):
    try:
        return fe.load(cid)["State"].get("Pid") or None
    except MinirunError:
        return None


def remove(fe, cid):
    """rm -f -v: the container, its network, rootfs and anonymous volumes."""
    from minirun.frontend import lifecycle

    try:
        lifecycle.remove(fe, cid, force=True, volumes=True)
    except MinirunError:
        if os.path.isdir(fe.record_dir(cid)):
            raise   # not "no such container": a real failure


def kill_for_restart(fe, cid):
    """SIGKILL the container's processes *without* marking a manual stop, so its
    restart policy applies (what the kubelet does when a liveness probe fails)."""
    from minirun.runtime import kill as kill_mod

    try:
        kill_mod.kill(fe.root, cid, signal.SIGKILL, all_processes=True)
    except MinirunError:
        pass


def exec_probe(fe, cid, argv, timeout):
    """Run argv in the container (a liveness probe); True if it exits 0 in time.
    In a child process: exec hands the caller's stdio to the command."""
    code = ("import sys\nfrom minirun.kube import adapter\n"
            "sys.exit(adapter.exec_in(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))")
    try:
        res = subprocess.run([sys.executable, "-c", code, fe.store_root, fe.root, cid, *argv],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0


def exec_in(store_root, root, cid, argv):
    """The child side of exec_probe: the front end's exec, its exit status."""
    from minirun.frontend.execute import exec_in as frontend_exec
    from minirun.frontend.records import Frontend

    try:
        return frontend_exec(Frontend(store_root, root), cid, argv)
    except MinirunError:
        return 126
