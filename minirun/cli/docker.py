"""The Docker-like commands: `minirun run IMAGE`, `minirun container ...`, logs, stop, rm, ...

How they live next to runc's verbs (docs/frontend.md):
  * `minirun container <cmd>` holds the whole Docker-like set, unambiguously;
  * `minirun run`, `ps` and `exec` are dispatchers: runc's form when the
    arguments say so (run: --bundle/-b or another runc-only flag, or exactly
    one positional and ./config.json present; ps: a positional container id;
    exec: a runc-only flag, or a container that is an OCI container and not a
    front-end one), the Docker-like form otherwise;
  * top-level aliases where runc has no verb of that name: logs, stop, rm,
    inspect, stats, top, wait, restart, port, rename, volume, system;
  * create, start, kill, delete, state, list, pause, resume, update, events
    stay runc's (engines call them).
Usage errors of Docker-like commands exit 125, like docker's CLI.
"""
import json
import os
import sys

import click

from minirun.errors import MinirunError


class DockerCommand(click.Command):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            e.exit_code = 125
            raise


class DockerGroup(click.Group):
    command_class = DockerCommand

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            e.exit_code = 125
            raise

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            e.exit_code = 125
            raise


store_option = click.option(
    "--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
    help="Image store, which also holds containers and volumes (default /var/lib/minirun).")


def _fe(ctx, store_root):
    from minirun.frontend.records import Frontend

    return Frontend(store_root, ctx.find_root().obj["root"])


def _command(name=None, **kw):
    kw.setdefault("cls", DockerCommand)
    return click.command(name, **kw)


def _each(refs, fn):
    """Docker's many-containers commands: go on after an error, exit 1 at the end."""
    failed = []
    for ref in refs:
        try:
            fn(ref)
        except MinirunError as e:
            failed.append(e)
            click.echo(f"minirun: {e}", err=True)
    if failed:
        raise SystemExit(1)


# --- run / create -----------------------------------------------------------------------
def _run_options(f):
    opts = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, metavar="KEY=VALUE",
                     help="Set an environment variable (KEY alone: the host's value)."),
        click.option("--env-file", multiple=True, metavar="FILE",
                     help="Read environment variables from a file."),
        click.option("-v", "--volume", "volumes", multiple=True,
                     metavar="SRC:DST[:ro]", help="Bind a host path, or a named volume NAME:DST, "
                     "or an anonymous volume DST."),
        click.option("--tmpfs", multiple=True, metavar="DST[:OPTS]", help="Mount a tmpfs."),
        click.option("-p", "--publish", multiple=True, metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                     help="Publish a container's port on the host."),
        click.option("--network", "--net", "network", default="bridge", show_default=True,
                     help="bridge, a network name, none, host or container:NAME."),
        click.option("-h", "--hostname", help="Container host name (default: the short id)."),
        click.option("-u", "--user", help="Username or UID[:GID] to run as."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("--entrypoint", help="Override the image's ENTRYPOINT (\"\" clears it)."),
        click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
        click.option("-m", "--memory", help="Memory limit (e.g. 64m)."),
        click.option("--memory-swap", help="Memory plus swap limit; -1: unlimited swap."),
        click.option("--cpus", help="Number of CPUs (e.g. 1.5)."),
        click.option("-c", "--cpu-shares", type=int, help="Relative CPU weight."),
        click.option("--pids-limit", type=int, help="Maximum number of processes."),
        click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]",
                     help="Set a ulimit (e.g. nofile=1024:2048)."),
        click.option("--cap-add", multiple=True, help="Add a capability (or ALL)."),
        click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL)."),
        click.option("--privileged", is_flag=True,
                     help="All capabilities and devices, no masked paths."),
        click.option("--security-opt", multiple=True,
                     help="no-new-privileges, seccomp=PROFILE.json|unconfined."),
        click.option("--restart", default="no", show_default=True,
                     help="no, on-failure[:N], always or unless-stopped."),
        click.option("--health-cmd", help="Command to check health (run with /bin/sh -c)."),
        click.option("--health-interval", help="Time between checks (default 30s)."),
        click.option("--health-timeout", help="Maximum time of one check (default 30s)."),
        click.option("--health-retries", type=int, help="Failures in a row to be unhealthy."),
        click.option("--health-start-period", help="Grace period before failures count."),
        click.option("--no-healthcheck", is_flag=True, help="Disable the image's HEALTHCHECK."),
        click.option("--init", is_flag=True,
                     help="Run an init (tini/catatonit) as pid 1 that reaps and forwards signals."),
        click.option("-i", "--interactive", is_flag=True, help="Keep stdin open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal."),
        click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE",
                     help="Set metadata (see `ps --filter label=KEY`)."),
        click.option("--log-opt", "log_opts", multiple=True,
                     help="max-size=SIZE, max-file=N (json-file log rotation)."),
        click.option("--stop-signal", help="Signal that stops the container (default TERM)."),
        click.option("--stop-timeout", type=int, help="Seconds to wait before SIGKILL on stop."),
        click.option("--cidfile", metavar="FILE", help="Write the container id to FILE."),
        store_option,
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _create(fe, kw):
    from minirun.frontend import lifecycle

    cidfile = kw.get("cidfile")
    if cidfile and os.path.exists(cidfile):
        raise lifecycle.RunError(f"container ID file found, make sure the other container isn't "
                                 f"running or delete {cidfile}")
    rec = _create_record(fe, kw)
    if cidfile:
        with open(cidfile, "w") as f:
            f.write(rec["Id"])
    return rec


def _create_record(fe, kw):
    from minirun.frontend import lifecycle

    return lifecycle.create(
        fe, kw["image"], kw["command"], name=kw["name"], entrypoint=kw["entrypoint"],
        env=kw["env"], env_files=kw["env_file"], volumes=kw["volumes"], tmpfs=kw["tmpfs"],
        publish=kw["publish"], network=kw["network"], hostname=kw["hostname"], user=kw["user"],
        workdir=kw["workdir"], read_only=kw["read_only"], memory=kw["memory"],
        memory_swap=kw["memory_swap"], cpus=kw["cpus"], cpu_shares=kw["cpu_shares"],
        pids_limit=kw["pids_limit"], ulimits=kw["ulimits"], cap_add=kw["cap_add"],
        cap_drop=kw["cap_drop"], privileged=kw["privileged"], security_opt=kw["security_opt"],
        restart=kw["restart"], health_cmd=kw["health_cmd"],
        health_interval=kw["health_interval"], health_timeout=kw["health_timeout"],
        health_retries=kw["health_retries"], health_start_period=kw["health_start_period"],
        no_healthcheck=kw["no_healthcheck"], init=kw["init"], tty=kw["tty"],
        interactive=kw["interactive"], auto_remove=kw.get("rm", False),
        log_opts=kw["log_opts"], labels=kw["labels"], stop_signal=kw["stop_signal"],
        stop_timeout=kw["stop_timeout"], progress=sys.stderr)


_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


@_command("run", context_settings=_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id.")
@click.option("--rm", is_flag=True, help="Remove the container (and its anonymous volumes) "
              "when it exits.")
@click.option("--sig-proxy/--no-sig-proxy", default=True,
              help="Forward signals to the container (attached, without -t).")
@_run_options
@click.pass_context
def run(ctx, detach, rm, sig_proxy, **kw):
    """Run a command in a new container, from IMAGE (local, or pulled).

    Exit status: the command's; 125 if minirun fails, 126 if the command
    cannot be invoked, 127 if it is not found.  (`minirun run --bundle DIR ID`
    is runc's run: see docs/frontend.md.)

    \b
    Examples:
      minirun run --rm busybox echo hi
      minirun run -d --name web -p 8080:80 busybox httpd -f -p 80 -h /var/www
      minirun run -it busybox sh
    """
    from minirun.frontend import client, lifecycle

    if kw["tty"] and kw["interactive"] and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")
    fe = _fe(ctx, kw["store_root"])
    kw["rm"] = rm
    rec = _create(fe, kw)
    cid = rec["Id"]
    try:
        if detach:
            lifecycle.start(fe, cid)
            click.echo(cid)
            return
        code = lifecycle.start(fe, cid, attach=True, interactive=kw["interactive"],
                               sig_proxy=sig_proxy)
    except client.StartFailed:
        _discard(fe, cid)
        raise
    except BaseException:
        if detach:
            _discard(fe, cid)
        raise
    sys.stdout.flush()
    sys.exit(code)


def _discard(fe, cid):
    """A `run` that could not start leaves nothing behind."""
    from minirun.frontend import lifecycle, records

    try:
        lifecycle.remove(fe, cid, force=True, volumes=True)
    except records.NoSuchContainer:
        pass


@_command("create", context_settings=_SETTINGS)
@_run_options
@click.pass_context
def create(ctx, **kw):
    """Create a container from IMAGE without starting it; print its id."""
    fe = _fe(ctx, kw["store_root"])
    rec = _create(fe, kw)
    click.echo(rec["Id"])


@_command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr; exit with its status.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start(ctx, attach, interactive, store_root, containers):
    """Start one or more stopped containers."""
    from minirun.frontend import lifecycle

    fe = _fe(ctx, store_root)
    if attach or interactive:
        if len(containers) > 1:
            raise click.UsageError("you cannot start and attach multiple containers at once")
        cid, rec = fe.find(containers[0])
        if lifecycle.is_running(fe, rec):
            raise MinirunError(f"container {containers[0]} is already running")
        code = lifecycle.start(fe, cid, attach=True, interactive=interactive)
        sys.exit(code)

    def one(ref):
        cid, rec = fe.find(ref)
        if not lifecycle.is_running(fe, rec):
            lifecycle.start(fe, cid)
        click.echo(ref)

    _each(containers, one)


# --- ps ---------------------------------------------------------------------------------
def _filters(items):
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in ("name", "id", "status", "label", "ancestor", "exited"):
            raise click.UsageError(f"invalid filter {item!r}")
        out.setdefault(key, []).append(value)
    return out


def _matches(row, rec, state, filters):
    import re as _re

    for key, values in filters.items():
        if key == "name" and not any(_re.search(v, row["Names"]) for v in values):
            return False
        if key == "id" and not any(rec["Id"].startswith(v) for v in values):
            return False
        if key == "status" and state not in values:
            return False
        if key == "exited" and not (state == "exited" and str(rec["State"]["ExitCode"])
                                    in values):
            return False
        if key == "ancestor" and rec["Config"]["Image"] not in values:
            return False
        if key == "label":
            labels = rec["Config"].get("Labels") or {}
            for v in values:
                k, eq, want = v.partition("=")
                if k not in labels or (eq and labels[k] != want):
                    return False
    return True


@_command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--no-trunc", is_flag=True, help="Full ids and commands.")
@click.option("-n", "--last", type=int, default=None, help="The last N created containers.")
@click.option("-l", "--latest", is_flag=True, help="The last created container.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="name=, id=, status=, label=, ancestor=, exited=")
@click.option("--format", "fmt", help="table, json, or a template like '{{.Names}}'.")
@store_option
@click.pass_context
def ps(ctx, all_, quiet, no_trunc, last, latest, filters, fmt, store_root):
    """List containers."""
    from minirun.frontend import lifecycle, views

    fe = _fe(ctx, store_root)
    wanted = _filters(filters)
    rows = []
    records = fe.records()
    if latest:
        last = 1
    if last is not None:
        records = records[:last]
        all_ = True
    for rec in records:
        state = lifecycle.current_state(fe, rec)
        if not all_ and state not in ("running", "paused", "restarting"):
            continue
        row = views.ps_row(rec, state, trunc=not no_trunc)
        if _matches(row, rec, state, wanted):
            rows.append(row)
    if quiet:
        for r in rows:
            click.echo(r["ID"])
    elif fmt == "json":
        for r in rows:
            click.echo(json.dumps(r))
    elif fmt and fmt != "table":
        for r in rows:
            click.echo(views.render(fmt, r))
    else:
        click.echo(views.table(rows, views.PS_COLUMNS))


# --- exec -------------------------------------------------------------------------------
@_command("exec", context_settings=_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE",
              help="Set an environment variable for the command.")
@click.option("--env-file", multiple=True, metavar="FILE",
              help="Read environment variables from a file.")
@click.option("-u", "--user", help="Username or UID[:GID].")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="All capabilities for the command.")
@store_option
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx, detach, interactive, tty, env, env_file, user, workdir, privileged, store_root,
          container, command):
    """Run a command in a running container.

    Exit status: the command's; 126 if it cannot be invoked, 127 if not found.
    """
    from minirun.frontend import bundle, lifecycle, options
    from minirun.image.bundle import resolve_user
    from minirun.runtime import exec as exec_mod
    from minirun.runtime.state import Container

    fe = _fe(ctx, store_root)
    cid, rec = fe.find(container)
    if lifecycle.current_state(fe, rec) != "running":
        raise MinirunError(f"container {cid[:12]} is not running")
    env_list = options.parse_env(env_file, env)
    with Container.load(fe.root, cid, lock=False) as c:
        config = c.config() or {}
    process = exec_mod.process_from_flags(config, command, env=env_list, cwd=workdir, tty=tty)
    if user:
        process["user"] = resolve_user(rec["Rootfs"], user)
    if privileged:
        process["capabilities"] = bundle.capabilities(privileged=True)
        process["capabilities"]["ambient"] = []
    if not interactive or detach:
        null = os.open("/dev/null", os.O_RDWR)
        # -d: the process outlives us, with no terminal to write to (like docker exec -d)
        for fd in ((0, 1, 2) if detach else (0,)):
            os.dup2(null, fd)
        os.close(null)
    if tty and interactive and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")
    try:
        status = exec_mod.execute(fe.root, cid, process, detach=detach)
    except MinirunError as e:
        code = lifecycle.exec_error_code(e)
        if code != 125:
            e.exit_code = code  # 126/127, as docker exec
        raise
    sys.stdout.flush()
    sys.exit(status)


# --- stop, kill, restart, rm, wait -----------------------------------------------------------
@_command()
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing it (default 10).")
@click.option("-s", "--signal", "sig", help="Signal to stop with (default: its StopSignal).")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop(ctx, timeout, sig, store_root, containers):
    """Stop running containers: SIGTERM, then SIGKILL after the timeout."""
    from minirun.frontend import lifecycle
    from minirun.frontend.options import parse_signal

    fe = _fe(ctx, store_root)
    num = parse_signal(sig) if sig else None

    def one(ref):
        lifecycle.stop(fe, fe.resolve(ref), timeout, num)
        click.echo(ref)

    _each(containers, one)


@_command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True,
              help="Signal to send (name or number).")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill(ctx, sig, store_root, containers):
    """Send a signal to running containers."""
    from minirun.frontend import lifecycle, options

    fe = _fe(ctx, store_root)
    num = options.parse_signal(sig)

    def one(ref):
        lifecycle.kill(fe, fe.resolve(ref), num)
        click.echo(ref)

    _each(containers, one)


@_command()
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for the stop before killing it.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart(ctx, timeout, store_root, containers):
    """Stop (if running) and start containers."""
    from minirun.frontend import lifecycle

    fe = _fe(ctx, store_root)

    def one(ref):
        cid = fe.resolve(ref)
        lifecycle.stop(fe, cid, timeout)
        lifecycle.start(fe, cid)
        click.echo(ref)

    _each(containers, one)


@_command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm(ctx, force, volumes, store_root, containers):
    """Remove containers."""
    from minirun.frontend import lifecycle

    fe = _fe(ctx, store_root)

    def one(ref):
        lifecycle.remove(fe, fe.resolve(ref), force=force, volumes=volumes)
        click.echo(ref)

    _each(containers, one)


@_command()
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait(ctx, store_root, containers):
    """Block until containers stop; print their exit codes."""
    from minirun.frontend import lifecycle

    fe = _fe(ctx, store_root)
    _each(containers, lambda ref: click.echo(str(lifecycle.wait(fe, fe.resolve(ref)))))


def _each_runtime_verb(fe, containers, verb):
    """Apply an OCI verb (runtime.control.pause/resume) to each named container."""
    def one(ref):
        verb(fe.root, fe.resolve(ref))
        click.echo(ref)

    _each(containers, one)


@_command()
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause(ctx, store_root, containers):
    """Freeze all processes of containers."""
    from minirun.runtime import control

    _each_runtime_verb(_fe(ctx, store_root), containers, control.pause)


@_command()
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause(ctx, store_root, containers):
    """Thaw paused containers."""
    from minirun.runtime import control

    _each_runtime_verb(_fe(ctx, store_root), containers, control.resume)


@_command()
@store_option
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename(ctx, store_root, container, new_name):
    """Rename a container (network aliases follow at its next start)."""
    from minirun.frontend import recordfile

    fe = _fe(ctx, store_root)
    cid, rec = fe.find(container)
    old = rec["Name"].lstrip("/")
    fe.reserve_name(new_name, cid)
    try:
        with recordfile.update(fe.record_dir(cid)) as r:
            r["Name"] = "/" + new_name
    except BaseException:
        fe.release_name(new_name, cid)
        raise
    fe.release_name(old, cid)


@_command()
@store_option
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port(ctx, store_root, container, private_port):
    """List a container's published ports."""
    from minirun.frontend import lifecycle

    fe = _fe(ctx, store_root)
    cid, rec = fe.find(container)
    if lifecycle.current_state(fe, rec) not in ("running", "paused"):
        return
    ports = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port and "/" not in private_port:
        private_port += "/tcp"
    for key, binds in sorted(ports.items()):
        for b in binds or []:
            if private_port and key != private_port:
                continue
            where = f"{b['HostIp']}:{b['HostPort']}"
            click.echo(where if private_port else f"{key} -> {where}")


# --- logs --------------------------------------------------------------------------------
@_command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("-n", "--tail", default="all", show_default=True, help="Lines from the end.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Since a timestamp (RFC 3339) or a duration ago (10m).")
@store_option
@click.argument("container")
@click.pass_context
def logs(ctx, follow, tail, timestamps, since, store_root, container):
    """Print a container's output (stdout to stdout, stderr to stderr)."""
    from minirun.frontend import lifecycle, logs as logs_mod

    fe = _fe(ctx, store_root)
    cid, rec = fe.find(container)
    if tail == "all":
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise click.UsageError(f"invalid --tail {tail!r}") from None
        if tail_n < 0:
            tail_n = None
    printer = logs_mod.Printer(timestamps, logs_mod.parse_since(since))
    if not follow:
        f, _ = logs_mod.show(rec["LogPath"], printer, tail_n)
        if f is not None:
            f.close()
        return

    def still_running():
        try:
            r = fe.load(cid)
        except MinirunError:
            return False
        return lifecycle.is_running(fe, r)

    try:
        logs_mod.follow(rec["LogPath"], printer, still_running, tail_n)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


# --- inspect ------------------------------------------------------------------------------
@_command()
@click.option("-f", "--format", "fmt", help="A template like '{{.State.Status}}'.")
@click.option("--type", "kind", type=click.Choice(["container", "image", "volume"]),
              help="What NAMES are (default: a container, else an image, else a volume).")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(ctx, fmt, kind, store_root, names):
    """Low-level information on containers (or images, volumes) as JSON."""
    from minirun.frontend import lifecycle, views, volumes

    fe = _fe(ctx, store_root)
    docs, failed = [], []
    for name in names:
        doc = None
        if kind in (None, "container"):
            try:
                cid, rec = fe.find(name)
                doc = views.inspect_doc(rec, lifecycle.current_state(fe, rec))
            except MinirunError:
                doc = None
        if doc is None and kind in (None, "image"):
            doc = _image_doc(fe, name)
        if doc is None and kind in (None, "volume"):
            try:
                doc = volumes.inspect(fe, name)
            except MinirunError:
                doc = None
        if doc is None:
            failed.append(name)
            continue
        docs.append(doc)
    if fmt:
        for doc in docs:
            click.echo(views.render(fmt, doc))
    else:
        click.echo(json.dumps(docs, indent=4))
    for name in failed:
        click.echo(f"minirun: No such object: {name}", err=True)
    if failed:
        raise SystemExit(1)


def _image_doc(fe, name):
    store = fe.image_store()
    image = store.lookup(name)
    if image is None:
        return None
    cfg = image.config
    return {"Id": image.id, "RepoTags": image.names, "Created": cfg.get("created"),
            "Architecture": cfg.get("architecture"), "Os": cfg.get("os"), "Size": image.size,
            "Config": cfg.get("config", {}), "RootFS": {"Type": "layers",
                                                      "Layers": image.diff_ids}}


# --- stats, top ---------------------------------------------------------------------------
@_command()
@click.option("-a", "--all", "all_", is_flag=True, help="All containers (default: running).")
@click.option("--no-stream", is_flag=True, help="Print one reading and exit.")
@click.option("--format", "fmt", help="json, or a template like '{{.Name}} {{.CPUPerc}}'.")
@store_option
@click.argument("containers", nargs=-1)
@click.pass_context
def stats(ctx, all_, no_stream, fmt, store_root, containers):
    """Live resource usage of containers: CPU, memory, network, block I/O, pids."""
    import time

    from minirun.frontend import lifecycle, views

    fe = _fe(ctx, store_root)
    if containers:
        records = [fe.find(ref)[1] for ref in containers]
    else:
        records = [r for r in fe.records()
                   if all_ or lifecycle.current_state(fe, r) in ("running", "paused")]

    def reading():
        out = {}
        for rec in records:
            try:
                out[rec["Id"]] = views.sample(fe, rec)
            except MinirunError:
                continue
        return out

    def show(rows):
        if fmt == "json":
            for r in rows:
                click.echo(json.dumps(r))
        elif fmt:
            for r in rows:
                click.echo(views.render(fmt, r))
        else:
            click.echo(views.table(rows, views.STATS_COLUMNS))

    before = reading()
    try:
        while True:
            time.sleep(0.5 if no_stream else 1.0)
            after = reading()
            rows = [views.stats_row(rec, before[rec["Id"]], after[rec["Id"]])
                    for rec in records if rec["Id"] in before and rec["Id"] in after]
            if not no_stream and sys.stdout.isatty():
                click.echo("\x1b[2J\x1b[H", nl=False)
            show(rows)
            if no_stream:
                return
            before = after
    except KeyboardInterrupt:
        pass


@_command(context_settings={"ignore_unknown_options": True})
@store_option
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx, store_root, container, ps_args):
    """The running processes of a container (host `ps`, default -ef)."""
    import subprocess

    from minirun.runtime.query import processes

    fe = _fe(ctx, store_root)
    cid = fe.resolve(container)
    pids = set(processes(fe.root, cid))
    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise MinirunError(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise MinirunError("couldn't find PID field in ps output")
    col = header.index("PID")
    click.echo(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            click.echo(line)


# --- prune ---------------------------------------------------------------------------------
def _confirm(force, what):
    if force:
        return True
    return click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?",
                         default=False)


def _prune_containers(fe):
    from minirun.frontend import lifecycle, volumes

    removed, space = [], 0
    for rec in fe.records():
        if lifecycle.current_state(fe, rec) in ("exited", "created", "dead"):
            upper = rec["GraphDriver"]["Data"]["UpperDir"]
            size = volumes.du(upper) if os.path.isdir(upper) else 0
            try:
                lifecycle.remove(fe, rec["Id"])
            except MinirunError as e:
                click.echo(f"minirun: {e}", err=True)
                continue
            removed.append(rec["Id"])
            space += size
    return removed, space


@_command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@store_option
@click.pass_context
def container_prune(ctx, force, store_root):
    """Remove all stopped containers."""
    from minirun.frontend import views

    if not _confirm(force, "all stopped containers"):
        return
    removed, space = _prune_containers(_fe(ctx, store_root))
    if removed:
        click.echo("Deleted Containers:\n" + "\n".join(removed) + "\n")
    click.echo(f"Total reclaimed space: {views.human_size(space)}")


# --- groups ------------------------------------------------------------------------------------
@click.group(cls=DockerGroup)
def container():
    """Manage containers (the Docker-like set: create, start, run, ps, exec, stop, kill,
    restart, rm, inspect, logs, stats, top, wait, prune, pause, unpause, port, rename)."""


for _cmd in (create, start, run, ps, exec_, stop, kill, restart, rm, inspect, logs, stats, top,
             wait, container_prune, pause, unpause, port, rename):
    container.add_command(_cmd)
container.add_command(ps, "ls")
container.add_command(ps, "list")


@click.group(cls=DockerGroup)
def volume():
    """Manage volumes: create, ls, inspect, rm, prune."""


@volume.command("create")
@click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Set metadata on the volume.")
@store_option
@click.argument("name", required=False)
@click.pass_context
def volume_create(ctx, labels, store_root, name):
    """Create a volume (a random name if none is given)."""
    from minirun.frontend import volumes

    info, _ = volumes.create(_fe(ctx, store_root), name,
                             labels=dict(lb.partition("=")[::2] for lb in labels))
    click.echo(info["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.option("--format", "fmt", help="json, or a template like '{{.Name}}'.")
@store_option
@click.pass_context
def volume_ls(ctx, quiet, fmt, store_root):
    """List volumes."""
    from minirun.frontend import views, volumes

    infos = volumes.list_volumes(_fe(ctx, store_root))
    if quiet:
        for i in infos:
            click.echo(i["Name"])
    elif fmt == "json":
        for i in infos:
            click.echo(json.dumps(i))
    elif fmt:
        for i in infos:
            click.echo(views.render(fmt, i))
    else:
        click.echo(views.table(infos, [("DRIVER", "Driver"), ("VOLUME NAME", "Name")],
                               sep="     "))


@volume.command("inspect")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_inspect(ctx, store_root, names):
    """Details of volumes as JSON."""
    from minirun.frontend import volumes

    fe = _fe(ctx, store_root)
    click.echo(json.dumps([volumes.inspect(fe, n) for n in names], indent=4))


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="No error if it does not exist.")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_rm(ctx, force, store_root, names):
    """Remove volumes (not while a container uses them)."""
    from minirun.frontend import volumes

    fe = _fe(ctx, store_root)

    def one(name):
        volumes.remove(fe, name, force=force)
        click.echo(name)

    _each(names, one)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Named volumes too, not only anonymous.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@store_option
@click.pass_context
def volume_prune(ctx, all_, force, store_root):
    """Remove volumes no container uses."""
    from minirun.frontend import views, volumes

    if not _confirm(force, "all local volumes not used by at least one container"):
        return
    removed = volumes.prune(_fe(ctx, store_root), all_volumes=all_)
    if removed:
        click.echo("Deleted Volumes:\n" + "\n".join(n for n, _ in removed) + "\n")
    click.echo(f"Total reclaimed space: {views.human_size(sum(s for _, s in removed))}")


@click.group(cls=DockerGroup)
def system():
    """System-wide commands: prune."""


@system.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Also images no container uses.")
@click.option("--volumes", is_flag=True, help="Also unused anonymous volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@store_option
@click.pass_context
def system_prune(ctx, all_, volumes, force, store_root):
    """Remove stopped containers, unused networks, unused images (-a), volumes (--volumes)."""
    from minirun import network as net
    from minirun.frontend import views
    from minirun.frontend import volumes as vol

    what = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if all_ else
                "all dangling build cache")
    if not _confirm(force, "\n  - " + "\n  - ".join(what) + "\n"):
        return
    fe = _fe(ctx, store_root)
    removed, space = _prune_containers(fe)
    if removed:
        click.echo("Deleted Containers:\n" + "\n".join(removed) + "\n")
    nets = []
    for n in net.list_networks(root=fe.root):
        if n.get("default") or n["name"] in ("bridge", "host", "none"):
            continue
        info = net.inspect_network(n["name"], root=fe.root)
        if not info.get("containers"):
            try:
                net.remove_network(n["name"], root=fe.root)
                nets.append(n["name"])
            except MinirunError:
                pass
    if nets:
        click.echo("Deleted Networks:\n" + "\n".join(nets) + "\n")
    if volumes:
        gone = vol.prune(fe)
        if gone:
            click.echo("Deleted Volumes:\n" + "\n".join(n for n, _ in gone) + "\n")
            space += sum(s for _, s in gone)
    store = fe.image_store()
    if all_ and os.path.isdir(store.root):
        in_use = store.images_in_use()
        untagged = []
        for key, entry in sorted(store.refs().items()):
            if entry["manifest"] not in in_use:
                store.untag(key)
                untagged.append(key)
        if untagged:
            click.echo("Deleted Images:\n" + "\n".join(f"untagged: {k}" for k in untagged) + "\n")
    if os.path.isdir(store.root):
        _, freed = store.gc()
        space += freed
    click.echo(f"Total reclaimed space: {views.human_size(space)}")


# --- dispatchers between runc's verbs and the Docker-like ones -----------------------------------
_OCI_RUN_ONLY = {"--bundle", "-b", "--pid-file", "--console-socket", "--no-pivot",
                 "--no-new-keyring", "--preserve-fds", "--keep", "--pidfd-socket"}


def _value_options(cmd):
    """Option strings of `cmd` that take a value."""
    out = set()
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out


def _scan(args, value_opts, stop_at_positional=True):
    """(options seen, positionals) of an argument list, Docker-style."""
    seen, positionals = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positionals += args[i + 1:]
            break
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            seen.append(name)
            if name in value_opts and "=" not in a:
                i += 1
        elif a.startswith("-") and len(a) > 1:
            seen.append(a[:2])
            # -p8080:80 carries its value; -it are flags; -e X takes the next one
            for j, ch in enumerate(a[1:], 1):
                if "-" + ch in value_opts:
                    if j == len(a) - 1:
                        i += 1
                    break
        else:
            positionals.append(a)
            if stop_at_positional:
                positionals += args[i + 1:]
                break
        i += 1
    return seen, positionals


def is_oci_run(args):
    seen, positionals = _scan(args, _value_options(run) | _value_options(_oci("run")))
    if any(s in _OCI_RUN_ONLY for s in seen):
        return True
    return len(positionals) == 1 and os.path.isfile("config.json")


def is_oci_ps(args):
    seen, positionals = _scan(args, {"--format", "-f", "--filter", "-n", "--last", "--store"},
                              stop_at_positional=False)
    return bool(positionals)


_OCI_EXEC_ONLY = {"--process", "-p", "--pid-file", "--console-socket", "--cwd", "--cap", "-c",
                  "--no-new-privs", "--preserve-fds", "--ignore-paused", "--additional-gids",
                  "-g", "--process-label", "--apparmor", "--cgroup"}


def is_oci_exec(args, root):
    value_opts = _value_options(exec_) | _value_options(_oci("exec_"))
    seen, positionals = _scan(args, value_opts)
    if any(s in _OCI_EXEC_ONLY for s in seen):
        return True
    if not positionals:
        return False
    ref = positionals[0]
    from minirun.frontend.records import ID_RE, Frontend

    if os.path.isdir(os.path.join(root, ref)) and not ID_RE.match(ref):
        return True  # an OCI container of that id (engines' ids win over names)
    store = None
    for i, a in enumerate(args):
        if a == "--store" and i + 1 < len(args):
            store = args[i + 1]
        elif a.startswith("--store="):
            store = a.split("=", 1)[1]
    try:
        return not Frontend(store, root).exists(ref)
    except MinirunError:
        return True


def _oci(name):
    from minirun.cli import oci

    return getattr(oci, name)


class Dispatcher(click.Command):
    """A top-level name shared by runc's verb and the Docker-like command."""

    def __init__(self, name, pick, docker_cmd, oci_name, help):
        super().__init__(name, help=help, context_settings={"ignore_unknown_options": True})
        self.pick = pick
        self.docker_cmd = docker_cmd
        self.oci_name = oci_name

    def make_context(self, info_name, args, parent=None, **extra):
        root = (parent.obj or {}).get("root", "/run/minirun") if parent else "/run/minirun"
        target = _oci(self.oci_name) if self.pick(list(args), root) else self.docker_cmd
        return target.make_context(info_name, args, parent=parent, **extra)


run_dispatch = Dispatcher(
    "run", lambda args, root: is_oci_run(args), run, "run",
    help="Run a container: `run [OPTIONS] IMAGE [CMD...]` (Docker-like) or runc's "
         "`run --bundle DIR ID`.")
ps_dispatch = Dispatcher(
    "ps", lambda args, root: is_oci_ps(args), ps, "ps",
    help="List containers (Docker-like); `ps ID` lists a container's processes (runc).")
exec_dispatch = Dispatcher(
    "exec", is_oci_exec, exec_, "exec_",
    help="Run a command in a running container (Docker-like for front-end containers, "
         "runc's exec otherwise).")
