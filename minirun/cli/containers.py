"""Docker's container commands on front-end containers: ps, stop, kill, restart, rm,
wait, pause, unpause, rename, port, logs, inspect, stats, top, prune, and the
`container` group that holds them all (with run/create/start/exec, cp, attach,
diff, export from cli/files.py)."""
import json
import sys

import click

from minirun.cli.dockerlike import (DockerGroup, command, each, format_option, frontend, show,
                                    store_option)
from minirun.errors import MinirunError


@command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--no-trunc", is_flag=True, help="Full ids and commands.")
@click.option("-n", "--last", type=int, default=None, help="The last N created containers.")
@click.option("-l", "--latest", is_flag=True, help="The last created container.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="id=, name=, status=, label=KEY[=V], ancestor=IMAGE, exited=CODE")
@format_option
@store_option
@click.pass_context
def ps(ctx, all_, quiet, no_trunc, last, latest, filters, fmt, store_root):
    """List containers."""
    from minirun.cli import dockercalls  # the fast path (cli/frontfast.py) runs it too

    dockercalls.ps(frontend(ctx, store_root), all_, quiet, no_trunc, last, latest, filters, fmt)


# --- stop, kill, restart, rm, wait, pause -------------------------------------------------
@command()
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

    fe = frontend(ctx, store_root)
    num = parse_signal(sig) if sig else None

    def one(ref):
        lifecycle.stop(fe, fe.resolve(ref), timeout, num)
        click.echo(ref)

    each(containers, one)


@command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True,
              help="Signal to send (name or number).")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill(ctx, sig, store_root, containers):
    """Send a signal to running containers."""
    from minirun.frontend import lifecycle, options

    fe = frontend(ctx, store_root)
    num = options.parse_signal(sig)

    def one(ref):
        lifecycle.kill(fe, fe.resolve(ref), num)
        click.echo(ref)

    each(containers, one)


@command()
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for the stop before killing it.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart(ctx, timeout, store_root, containers):
    """Stop (if running) and start containers."""
    from minirun.frontend import lifecycle

    fe = frontend(ctx, store_root)

    def one(ref):
        cid = fe.resolve(ref)
        lifecycle.stop(fe, cid, timeout)
        lifecycle.start(fe, cid)
        click.echo(ref)

    each(containers, one)


@command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm(ctx, force, volumes, store_root, containers):
    """Remove containers."""
    from minirun.frontend import lifecycle

    fe = frontend(ctx, store_root)

    def one(ref):
        lifecycle.remove(fe, fe.resolve(ref), force=force, volumes=volumes)
        click.echo(ref)

    each(containers, one)


@command()
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait(ctx, store_root, containers):
    """Block until containers stop; print their exit codes."""
    from minirun.frontend import lifecycle

    fe = frontend(ctx, store_root)
    each(containers, lambda ref: click.echo(str(lifecycle.wait(fe, fe.resolve(ref)))))


def _each_verb_command(name, verb_name, doc):
    """pause/unpause: a lifecycle verb applied to each container named."""
    @command(name, help=doc)
    @store_option
    @click.argument("containers", nargs=-1, required=True)
    @click.pass_context
    def cmd(ctx, store_root, containers):
        from minirun.frontend import lifecycle

        fe = frontend(ctx, store_root)

        def one(ref):
            getattr(lifecycle, verb_name)(fe, fe.resolve(ref))
            click.echo(ref)

        each(containers, one)
    return cmd


pause = _each_verb_command("pause", "pause", "Freeze all processes of containers.")
unpause = _each_verb_command("unpause", "unpause", "Thaw paused containers.")


@command()
@click.option("-m", "--memory", help="Memory limit (e.g. 64m).")
@click.option("--memory-swap", help="Memory plus swap limit; -1: unlimited swap.")
@click.option("--cpus", help="Number of CPUs (e.g. 1.5).")
@click.option("-c", "--cpu-shares", type=int, help="Relative CPU weight.")
@click.option("--pids-limit", type=int, help="Maximum number of processes (-1: unlimited).")
@click.option("--restart", help="no, on-failure[:N], always or unless-stopped.")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def update(ctx, memory, memory_swap, cpus, cpu_shares, pids_limit, restart, store_root,
           containers):
    """Update the limits or restart policy of containers (running ones at once)."""
    from minirun.frontend import control

    fe = frontend(ctx, store_root)

    def one(ref):
        control.update(fe, ref, memory=memory, memory_swap=memory_swap, cpus=cpus,
                       cpu_shares=cpu_shares, pids_limit=pids_limit, restart=restart)
        click.echo(ref)

    each(containers, one)


@command()
@store_option
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename(ctx, store_root, container, new_name):
    """Rename a container (network aliases follow at its next start)."""
    from minirun.frontend import control

    control.rename(frontend(ctx, store_root), container, new_name)


@command()
@store_option
@click.argument("container", required=False)
@click.argument("private_port", required=False)
@click.pass_context
def port(ctx, store_root, container, private_port):
    """List published ports of a container (or of all running containers)."""
    from minirun.frontend import listing

    rows = listing.published_ports(frontend(ctx, store_root), container, private_port)
    if container and private_port and not rows:
        raise MinirunError(f"No public port '{private_port}' published for {container}")
    for name, key, where in rows:
        if container and private_port:
            click.echo(where)
        elif container:
            click.echo(f"{key} -> {where}")
        else:
            click.echo(f"{name}\t{key} -> {where}")


# --- logs ----------------------------------------------------------------------------------
@command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("-n", "--tail", default="all", show_default=True, help="Lines from the end.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Since a timestamp (RFC 3339) or a duration ago (10m).")
@click.option("--until", help="Before a timestamp (RFC 3339) or a duration ago (10m).")
@click.option("--details", is_flag=True, help="Show the extra attributes (labels, env) "
              "given to the log.")
@store_option
@click.argument("container")
@click.pass_context
def logs(ctx, follow, tail, timestamps, since, until, details, store_root, container):
    """Print a container's output (stdout to stdout, stderr to stderr)."""
    from minirun.frontend import logs as logs_mod

    fe = frontend(ctx, store_root)
    try:
        logs_mod.print_logs(fe, container, follow_output=follow, tail=tail, timestamps=timestamps,
                            since=since, until=until, details=details)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


# --- inspect --------------------------------------------------------------------------------
@command()
@click.option("-f", "--format", "fmt", help="A Go template like '{{.State.Status}}'.")
@click.option("-s", "--size", is_flag=True, help="Accepted for Docker compatibility.")
@click.option("--type", "kind", type=click.Choice(["container", "image", "volume", "network"]),
              help="What NAMES are (default: a container, else an image, volume, network).")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(ctx, fmt, size, kind, store_root, names):
    """Low-level information on containers (or images, volumes, networks) as JSON."""
    from minirun.frontend import template, views

    fe = frontend(ctx, store_root)
    if fmt and fmt.strip() != "json":
        parsed = template.parse(fmt)  # exit 125 before any output
    docs, failed = [], []
    for name in names:
        doc = views.inspect_any(fe, name, kind)
        if doc is None:
            failed.append(name)
        else:
            docs.append(doc)
    if fmt:
        for doc in docs:
            click.echo(json.dumps(doc) if fmt.strip() == "json" else parsed.execute(doc))
    else:
        click.echo(json.dumps(docs, indent=4))
    for name in failed:
        click.echo(f"minirun: No such object: {name}", err=True)
    if failed:
        raise SystemExit(1)


# --- stats, top ---------------------------------------------------------------------------
@command()
@click.option("-a", "--all", "all_", is_flag=True, help="All containers (default: running).")
@click.option("--no-stream", is_flag=True, help="Print one reading and exit.")
@click.option("--no-trunc", is_flag=True, help="Accepted for Docker compatibility.")
@format_option
@store_option
@click.argument("containers", nargs=-1)
@click.pass_context
def stats(ctx, all_, no_stream, no_trunc, fmt, store_root, containers):
    """Live resource usage of containers: CPU, memory, network, block I/O, pids."""
    from minirun.frontend import template, views

    if fmt and fmt not in ("json", "table"):
        template.parse(fmt.removeprefix("table "))  # exit 125 before any output
    fe = frontend(ctx, store_root)
    try:
        for rows in views.stats_stream(fe, containers, all_, no_stream):
            if not no_stream and sys.stdout.isatty():
                click.echo("\x1b[2J\x1b[H", nl=False)
            show(rows, fmt, views.STATS_COLUMNS)
    except KeyboardInterrupt:
        pass


@command(context_settings={"ignore_unknown_options": True})
@store_option
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx, store_root, container, ps_args):
    """The running processes of a container (host `ps`, default -ef)."""
    from minirun.frontend import views

    for line in views.top(frontend(ctx, store_root), container, ps_args):
        click.echo(line)


# --- prune ---------------------------------------------------------------------------------
def confirm(force, what):
    if force:
        return True
    return click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?",
                         default=False)


@command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="until=TIMESTAMP|DURATION, label=KEY[=VALUE], label!=KEY[=VALUE]")
@store_option
@click.pass_context
def container_prune(ctx, force, filters, store_root):
    """Remove all stopped containers (those the filters select)."""
    from minirun.frontend import listing, prune, views

    fe = frontend(ctx, store_root)
    listing.parse_filters(filters, listing.PRUNE_KEYS)  # exit 125 before the prompt
    if not confirm(force, "all stopped containers"):
        return
    removed, space = prune.containers(fe, filters, on_error=_warn)
    if removed:
        click.echo("Deleted Containers:\n" + "\n".join(removed) + "\n")
    click.echo(f"Total reclaimed space: {views.human_size(space)}")


def _warn(e):
    click.echo(f"minirun: {e}", err=True)


# --- the group ----------------------------------------------------------------------------
@click.group(cls=DockerGroup)
def container():
    """Manage containers (the Docker-like set: create, start, run, ps, exec, stop, kill,
    restart, rm, inspect, logs, stats, top, wait, prune, pause, unpause, port, rename, cp,
    attach, diff, export)."""


def _register():
    from minirun.cli import files, run

    for cmd in (run.create, run.start, run.run, run.exec_, ps, stop, kill, restart, rm, inspect,
                logs, stats, top, wait, container_prune, pause, unpause, port, rename, update,
                files.cp, files.attach, files.diff, files.export):
        container.add_command(cmd)
    container.add_command(ps, "ls")
    container.add_command(ps, "list")


_register()
