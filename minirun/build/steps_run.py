"""A RUN step: the command in a real minirun container (the runtime's
create/start/wait, as `minirun run` uses) on the step's overlay rootfs.

Like Docker's build containers: Docker's default capabilities, no
no_new_privs, stdin from /dev/null, /etc/hosts, /etc/hostname and
/etc/resolv.conf bind-mounted (they never enter the layer), and by default
the host's network (`--network host`, what a build needs to fetch packages);
`--network none` gives an empty network namespace.
"""
import json
import os
import uuid

from minirun.errors import MinirunError


class RunFailed(MinirunError):
    def __init__(self, command, code):
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.exit_code = code


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_spec(config, rootfs, argv, env, network, hostname, etc_dir):
    from minirun.frontend.bundle import capabilities
    from minirun.image.bundle import home_dir, image_spec

    spec = image_spec(config, rootfs, args=argv, entrypoint=[], env=env)
    proc = spec["process"]
    if not any(e.startswith("HOME=") for e in proc["env"]):
        proc["env"].append(f"HOME={home_dir(rootfs, proc['user']['uid'])}")
    proc["terminal"] = False
    user = proc["user"]  # the primary group is a supplementary one too (Docker, podman)
    user["additionalGids"] = sorted({user["gid"], *user.get("additionalGids", [])})
    proc["capabilities"] = capabilities()
    proc["noNewPrivileges"] = False
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # Docker leaves the daemon's
    hard = 1048576 if hard == resource.RLIM_INFINITY else hard
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}]
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = hostname
    linux = spec["linux"]
    if network == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    spec.pop("annotations", None)
    hosts = _write(os.path.join(etc_dir, "hosts"),
                   f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                   f"127.0.1.1\t{hostname}\n")
    files = {"/etc/hosts": hosts,
             "/etc/hostname": _write(os.path.join(etc_dir, "hostname"), hostname + "\n")}
    resolv = ""
    if network == "host":  # a copy: the step may write to it, never to the host's
        try:
            with open("/etc/resolv.conf") as f:
                resolv = f.read()
        except OSError:
            pass
    files["/etc/resolv.conf"] = _write(os.path.join(etc_dir, "resolv.conf"), resolv)
    for dest, src in files.items():
        spec["mounts"].append({"destination": dest, "type": "bind", "source": src,
                               "options": ["rbind", "rprivate"]})
    return spec


def run_command(workspace, config, argv, env, display, network="host", runtime_root=None,
                quiet=False):
    """Run argv in a container on the workspace; raise RunFailed on a non-zero exit.

    The runtime's create/start/wait/destroy, as `minirun run` does, but a
    build's signals stop the build: SIGINT, SIGTERM or SIGHUP kill the step's
    container (a shell as pid 1 would ignore them) and the build fails."""
    from minirun.linux.signals import SIGHUP, SIGINT, SIGKILL, SIGTERM, set_handler
    from minirun.runtime import delete as delete_mod
    from minirun.runtime.create import create
    from minirun.runtime.run import wait_for_init
    from minirun.runtime.start import start
    from minirun.runtime.state import Container

    if network not in ("host", "none"):
        raise MinirunError(f"build --network {network}: only host (the default) and none "
                           f"are supported")
    init = workspace.make_init_layer()
    rootfs = workspace.mount(init)
    cid = "build-" + uuid.uuid4().hex[:12]
    root = runtime_root or "/run/minirun"
    bundle = os.path.join(workspace.step_dir, "bundle")
    os.mkdir(bundle, 0o700)
    spec = make_spec(config, rootfs, argv, env, network, cid[6:], bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    stopped_by = []
    pid = None

    def stop(signum, _frame):
        stopped_by.append(signum)
        if pid is not None:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass

    saved = {sig: set_handler(sig, stop) for sig in (SIGINT, SIGTERM, SIGHUP)}
    saved_fds = _redirect(quiet)
    created = False
    try:
        container = create(root, cid, bundle, subreaper=True)
        created = True
        pid = container.pid
        container.close()
        if stopped_by:
            os.kill(pid, SIGKILL)
        start(root, cid)
        status = wait_for_init(pid)
    finally:
        _restore(saved_fds)
        try:
            if created:
                with Container.load(root, cid) as c:
                    delete_mod.destroy(c)
        finally:
            for sig, handler in saved.items():
                set_handler(sig, handler)
    if stopped_by:
        err = MinirunError(f"build stopped by signal {stopped_by[0]} during: {display}")
        err.exit_code = 128 + stopped_by[0]
        raise err
    if status != 0:
        raise RunFailed(display, status)


def _redirect(quiet):
    """stdin from /dev/null (a build never reads the terminal); with -q the
    command's output goes nowhere either."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    keep = {}
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in ((0, 1, 2) if quiet else (0,)):
            keep[fd] = os.dup(fd)
            os.dup2(null, fd)
    finally:
        os.close(null)
    return keep


def _restore(keep):
    for fd, saved in keep.items():
        os.dup2(saved, fd)
        os.close(saved)


