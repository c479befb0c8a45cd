"""`exec` and `top` of front-end containers: a process in a running container,
and the processes it has."""
import os

from minirun.errors import MinirunError, docker_exit_code
from minirun.frontend import control


def exec_in(fe, ref, command, *, env=(), env_files=(), user=None, workdir=None,
            privileged=False, tty=False, interactive=False, detach=False):
    """Run `command` in the running container `ref`; its exit status (0 when
    detached).  A command that cannot run raises with Docker's 126/127."""
    from minirun.frontend import bundle, options
    from minirun.image.bundle import resolve_user
    from minirun.runtime import exec as exec_mod
    from minirun.runtime.state import Container

    cid, rec = fe.find(ref)
    if control.current_state(fe, rec) != "running":
        raise MinirunError(f"container {cid[:12]} is not running")
    env_list = options.parse_env(env_files, env)
    workdir = options.check_workdir(workdir)
    with Container.load(fe.root, cid, lock=False) as c:
        config = c.config() or {}
    process = exec_mod.process_from_flags(config, command, env=env_list, cwd=workdir, tty=tty)
    if user:
        process["user"] = resolve_user(rec["Rootfs"], user)
    if privileged:
        process["capabilities"] = bundle.capabilities(privileged=True)
        process["capabilities"]["ambient"] = []
    if tty and interactive and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")
    if not interactive or detach:
        null = os.open("/dev/null", os.O_RDWR)
        # -d: the process outlives us, with no terminal to write to (like docker exec -d)
        for fd in ((0, 1, 2) if detach else (0,)):
            os.dup2(null, fd)
        os.close(null)
    try:
        return exec_mod.execute(fe.root, cid, process, detach=detach)
    except MinirunError as e:
        code = docker_exit_code(e)
        if code != 125:
            e.exit_code = code  # 126/127, as docker exec
        raise


def processes(fe, ref):
    """Host pids of the container's processes."""
    from minirun.runtime.query import processes as runtime_processes

    return set(runtime_processes(fe.root, fe.resolve(ref)))
