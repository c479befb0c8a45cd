"""The OCI runtime verbs, with runc's flags and output shapes.

containerd's shim and podman/conmon call these exactly as they call runc
(see docs in README "Use with containerd and podman").  Each command only
parses and calls minirun.runtime.
"""
import json
import sys

import click


def _root(ctx):
    return ctx.obj["root"]


@click.command()
@click.option("--bundle", "-b", default=".", metavar="DIR", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="A spec for an unprivileged user (user namespace).")
def spec(bundle, rootless):
    """Write a default config.json (runc's defaults) into the bundle.

    \b
    Example:
      mkdir -p demo/rootfs && cd demo && minirun spec
    """
    import os

    from minirun.errors import MinirunError
    from minirun.spec import default_spec

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise MinirunError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless), f, indent="\t")
        f.write("\n")


def _create_options(f):
    options = [
        click.option("--bundle", "-b", default=".", metavar="DIR",
                     help="Bundle directory (holds config.json and the rootfs)."),
        click.option("--pid-file", metavar="FILE", help="Write the container's host pid here."),
        click.option("--console-socket", metavar="PATH",
                     help="Unix socket that receives the pty master (process.terminal)."),
        click.option("--no-pivot", is_flag=True,
                     help="Use MS_MOVE+chroot instead of pivot_root (for ramdisk roots)."),
        click.option("--no-new-keyring", is_flag=True,
                     help="Keep the caller's session keyring instead of a new one."),
        click.option("--preserve-fds", type=int, default=0, metavar="N",
                     help="Pass fds 3..3+N-1 on to the container."),
        click.option("--pidfd-socket", metavar="PATH", hidden=True,
                     help="Accepted for runc compatibility; not used."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


@click.command()
@_create_options
@click.argument("container_id")
@click.pass_context
def create(ctx, container_id, bundle, pid_file, console_socket, no_pivot, no_new_keyring,
           preserve_fds, pidfd_socket):
    """Create a container; its process waits for `start`.

    \b
    Example:
      minirun create --bundle /path/to/bundle --pid-file /tmp/c1.pid c1
    """
    from minirun.runtime.create import create as do_create

    do_create(_root(ctx), container_id, bundle, pid_file=pid_file,
              console_socket=console_socket, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
              preserve_fds=preserve_fds).close()


@click.command()
@click.argument("container_id")
@click.pass_context
def start(ctx, container_id):
    """Start a created container (its process execs the configured program)."""
    from minirun.runtime.start import start as do_start

    do_start(_root(ctx), container_id)


@click.command()
@click.argument("container_id")
@click.pass_context
def state(ctx, container_id):
    """Print the container's OCI state as JSON."""
    from minirun.runtime.query import state as get_state

    click.echo(json.dumps(get_state(_root(ctx), container_id), indent=2))


@click.command()
@click.option("--all", "-a", "all_processes", is_flag=True,
              help="Signal every process in the container's cgroup.")
@click.argument("container_id")
@click.argument("signal", required=False, default="SIGTERM")
@click.pass_context
def kill(ctx, container_id, signal, all_processes):
    """Send SIGNAL (name or number, default TERM) to the container.

    \b
    Example:
      minirun kill c1 KILL
    """
    from minirun.runtime.kill import kill as do_kill
    from minirun.runtime.kill import parse_signal

    do_kill(_root(ctx), container_id, parse_signal(signal), all_processes)


@click.command()
@click.option("--force", "-f", is_flag=True, help="Kill the container first if it is running.")
@click.argument("container_id")
@click.pass_context
def delete(ctx, container_id, force):
    """Delete a stopped container (with --force, any container)."""
    from minirun.runtime.delete import delete as do_delete

    do_delete(_root(ctx), container_id, force)


@click.command(context_settings={"ignore_unknown_options": False})
@_create_options
@click.option("--detach", "-d", is_flag=True, help="Return once the container is started.")
@click.option("--keep", is_flag=True, help="Do not delete the container after it exits.")
@click.argument("container_id")
@click.pass_context
def run(ctx, container_id, bundle, pid_file, console_socket, no_pivot, no_new_keyring,
        preserve_fds, pidfd_socket, detach, keep):
    """Create and start a container; without -d, wait and exit with its status.

    \b
    Example:
      minirun run --bundle images/out/busybox demo
    """
    from minirun.runtime.run import run as do_run

    status = do_run(_root(ctx), container_id, bundle, detach=detach, pid_file=pid_file,
                    console_socket=console_socket, no_pivot=no_pivot,
                    no_new_keyring=no_new_keyring, preserve_fds=preserve_fds, keep=keep)
    sys.stdout.flush()
    sys.exit(status)


@click.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="table for people, json (the OCI states) for scripts.")
@click.option("--quiet", "-q", is_flag=True, help="Only print container ids.")
@click.pass_context
def list_containers(ctx, fmt, quiet):
    """List the containers under --root."""
    from minirun.runtime.query import list_states

    problems = []
    states = list_states(_root(ctx), problems)
    if quiet:
        for s in states:
            click.echo(s["id"])
    elif fmt == "json":
        click.echo(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root")
                 for s in states]
        _table(rows)
    if problems:
        # The others are listed; each unreadable one gets its own line.
        from minirun import log

        for problem in problems:
            log.error(problem)
        sys.stdout.flush()
        sys.exit(1)


@click.command()
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="table: uid, pid, ppid, command; json: the host pids (what engines read).")
@click.argument("container_id")
@click.pass_context
def ps(ctx, container_id, fmt):
    """Show the processes of a container (json: an array of host pids)."""
    from minirun.runtime.query import describe_process, processes

    pids = processes(_root(ctx), container_id)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    rows = [("UID", "PID", "PPID", "CMD")]
    for pid in pids:
        p = describe_process(pid)
        if p:
            rows.append((str(p["uid"]), str(p["pid"]), str(p["ppid"]), p["cmd"]))
    _table(rows)


@click.command()
def features():
    """Print the runtime-spec features document (what this runtime supports)."""
    from minirun.features import features as get_features

    click.echo(json.dumps(get_features(), indent=4))


def _table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@click.command("exec", context_settings={"allow_interspersed_args": False,
                                         "ignore_unknown_options": True})
@click.option("--process", "-p", "process_file", metavar="FILE",
              help="An OCI process JSON (overrides the other process flags).")
@click.option("--detach", "-d", is_flag=True, help="Return once the process has started.")
@click.option("--pid-file", metavar="FILE", help="Write the process's host pid here.")
@click.option("--console-socket", metavar="PATH", help="Unix socket receiving the pty master.")
@click.option("--tty", "-t", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("--cwd", metavar="DIR", help="Working directory inside the container.")
@click.option("--env", "-e", multiple=True, metavar="K=V", help="Set an environment variable.")
@click.option("--user", "-u", metavar="UID[:GID]", help="Run as this user.")
@click.option("--additional-gids", "-g", multiple=True, type=int, help="Extra group ids.")
@click.option("--cap", "-c", multiple=True, metavar="CAP", help="Add a capability.")
@click.option("--no-new-privs", is_flag=True, help="Set no_new_privs for the process.")
@click.option("--preserve-fds", type=int, default=0, metavar="N",
              help="Pass fds 3..3+N-1 on to the process.")
@click.option("--ignore-paused", is_flag=True, help="Allow exec in a paused container.")
@click.option("--process-label", hidden=True)
@click.option("--apparmor", hidden=True)
@click.option("--cgroup", hidden=True)
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx, container_id, command, process_file, detach, pid_file, console_socket, tty, cwd,
          env, user, additional_gids, cap, no_new_privs, preserve_fds, ignore_paused,
          process_label, apparmor, cgroup):
    """Run a new process inside a running container.

    \b
    Examples:
      minirun exec c1 ps
      minirun exec --process proc.json --detach --pid-file p c1
    """
    from minirun.errors import ConfigError
    from minirun.runtime import exec as exec_mod

    if process_file:
        process = exec_mod.load_process_file(process_file)
    else:
        if not command:
            raise ConfigError("exec needs a command (or --process FILE)")
        from minirun.runtime.state import Container

        with Container.load(_root(ctx), container_id, lock=False) as c:
            config = c.config() or {}
        process = exec_mod.process_from_flags(
            config, command, env=env, cwd=cwd, user=user, caps=cap, tty=tty,
            no_new_privs=no_new_privs, additional_gids=additional_gids)
    status = exec_mod.execute(_root(ctx), container_id, process, detach=detach,
                              pid_file=pid_file, console_socket=console_socket,
                              preserve_fds=preserve_fds, ignore_paused=ignore_paused)
    sys.stdout.flush()
    sys.exit(status)


@click.command()
@click.argument("container_id")
@click.pass_context
def pause(ctx, container_id):
    """Freeze every process of the container (cgroup freezer)."""
    from minirun.runtime.control import pause as do_pause

    do_pause(_root(ctx), container_id)


@click.command()
@click.argument("container_id")
@click.pass_context
def resume(ctx, container_id):
    """Thaw a paused container."""
    from minirun.runtime.control import resume as do_resume

    do_resume(_root(ctx), container_id)


@click.command()
@click.option("--resources", "-r", metavar="FILE|-",
              help="linux.resources JSON (from a file, or - for stdin).")
@click.option("--memory", type=int, help="Memory limit in bytes.")
@click.option("--memory-swap", type=int, help="Memory plus swap limit in bytes.")
@click.option("--memory-reservation", type=int, help="Memory soft limit in bytes.")
@click.option("--cpu-shares", type=int, help="Relative CPU weight.")
@click.option("--cpu-quota", type=int, help="CPU time (us) per period.")
@click.option("--cpu-period", type=int, help="CPU period (us).")
@click.option("--cpuset-cpus", help="CPUs allowed, e.g. 0-1.")
@click.option("--cpuset-mems", help="Memory nodes allowed.")
@click.option("--pids-limit", type=int, help="Maximum number of processes.")
@click.option("--blkio-weight", type=int, help="Block I/O weight (10-1000).")
@click.argument("container_id")
@click.pass_context
def update(ctx, container_id, resources, memory, memory_swap, memory_reservation, cpu_shares,
           cpu_quota, cpu_period, cpuset_cpus, cpuset_mems, pids_limit, blkio_weight):
    """Change the resource limits of a running container.

    \b
    Examples:
      minirun update --memory 67108864 --pids-limit 50 c1
      echo '{"memory":{"limit":134217728}}' | minirun update -r - c1
    """
    from minirun.runtime import control

    res = control.load_resources(resources) if resources else {}
    flat = {("memory", "limit"): memory, ("memory", "swap"): memory_swap,
            ("memory", "reservation"): memory_reservation, ("cpu", "shares"): cpu_shares,
            ("cpu", "quota"): cpu_quota, ("cpu", "period"): cpu_period,
            ("cpu", "cpus"): cpuset_cpus, ("cpu", "mems"): cpuset_mems,
            ("pids", "limit"): pids_limit, ("blockIO", "weight"): blkio_weight}
    for (group, key), value in flat.items():
        if value is not None:
            res.setdefault(group, {})[key] = value
    control.update(_root(ctx), container_id, res)


@click.command()
@click.option("--stats", is_flag=True, help="Print the usage once and exit.")
@click.option("--interval", default=5.0, type=float, show_default=True,
              help="Seconds between stats events.")
@click.argument("container_id")
@click.pass_context
def events(ctx, container_id, stats, interval):
    """Print container events (stats, oom) as JSON lines."""
    from minirun.runtime import control

    def write(event):
        click.echo(json.dumps(event))
        sys.stdout.flush()

    if stats:
        write(control.stats_event(_root(ctx), container_id))
    else:
        control.events(_root(ctx), container_id, interval, write)
