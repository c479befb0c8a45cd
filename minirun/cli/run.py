"""`run`, `create`, `start` and `exec` of the Docker-like front end: their flags
become one RunOptions (frontend/runopts.py), handed to the library."""
import sys

import click

from minirun.cli import dockercalls
from minirun.cli.dockerlike import command, each, frontend, store_option
from minirun.errors import MinirunError


def run_options(f):
    opts = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, metavar="KEY=VALUE",
                     help="Set an environment variable (KEY alone: the host's value)."),
        click.option("--env-file", multiple=True, metavar="FILE",
                     help="Read environment variables from a file."),
        click.option("-v", "--volume", "volumes", multiple=True,
                     metavar="SRC:DST[:ro]", help="Bind a host path, or a named volume NAME:DST, "
                     "or an anonymous volume DST."),
        click.option("--mount", multiple=True, metavar="type=bind|volume|tmpfs,...",
                     help="Attach a filesystem mount (Docker's --mount syntax)."),
        click.option("--tmpfs", multiple=True, metavar="DST[:OPTS]", help="Mount a tmpfs."),
        click.option("-p", "--publish", multiple=True, metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                     help="Publish a container's port on the host."),
        click.option("-P", "--publish-all", is_flag=True,
                     help="Publish every exposed port on a free host port."),
        click.option("--expose", multiple=True, metavar="PORT[/PROTO]",
                     help="Expose a port (for -P and inspect)."),
        click.option("--network", "--net", "network", default="bridge", show_default=True,
                     help="bridge, a network name, none, host or container:NAME."),
        click.option("--add-host", multiple=True, metavar="HOST:IP",
                     help="Add a line to /etc/hosts."),
        click.option("--dns", multiple=True, metavar="IP", help="Set a DNS server."),
        click.option("--dns-search", multiple=True, metavar="DOMAIN",
                     help="Set a DNS search domain."),
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
        click.option("--shm-size", help="Size of /dev/shm (e.g. 128m; default 64m)."),
        click.option("--ulimit", "ulimits", multiple=True, metavar="NAME=SOFT[:HARD]",
                     help="Set a ulimit (e.g. nofile=1024:2048)."),
        click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
                     help="Set a namespaced kernel parameter (e.g. net.core.somaxconn=1024)."),
        click.option("--device", multiple=True, metavar="HOST[:CONTAINER[:rwm]]",
                     help="Add a host device to the container."),
        click.option("--cap-add", multiple=True, help="Add a capability (or ALL)."),
        click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL)."),
        click.option("--privileged", is_flag=True,
                     help="All capabilities and devices, no masked paths."),
        click.option("--security-opt", multiple=True,
                     help="no-new-privileges, seccomp=PROFILE.json|unconfined."),
        click.option("--userns", help="User namespace mode: host (the only one)."),
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
        click.option("--label-file", multiple=True, metavar="FILE",
                     help="Read labels from a file (KEY=VALUE lines)."),
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


# The bodies are click-free (cli/dockercalls.py): the fast path (cli/frontfast.py)
# runs the same code for the common forms of `run`.
options_from, create_from, _discard = (dockercalls.options_from, dockercalls.create_from,
                                       dockercalls.discard)


_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


@command("run", context_settings=_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id.")
@click.option("--rm", is_flag=True, help="Remove the container (and its anonymous volumes) "
              "when it exits.")
@click.option("--sig-proxy/--no-sig-proxy", default=True,
              help="Forward signals to the container (attached, without -t).")
@click.option("--detach-keys", help="Keys that detach from the container (default ctrl-p,ctrl-q).")
@run_options
@click.pass_context
def run(ctx, detach, sig_proxy, detach_keys, **kw):
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
    dockercalls.run(frontend(ctx, kw["store_root"]), kw, detach, sig_proxy, detach_keys)


@command("create", context_settings=_SETTINGS)
@run_options
@click.pass_context
def create(ctx, **kw):
    """Create a container from IMAGE without starting it; print its id."""
    fe = frontend(ctx, kw["store_root"])
    rec = create_from(fe, dict(kw, rm=False))
    click.echo(rec["Id"])


@command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr; exit with its status.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin.")
@click.option("--detach-keys", help="Keys that detach from the container (default ctrl-p,ctrl-q).")
@store_option
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start(ctx, attach, interactive, detach_keys, store_root, containers):
    """Start one or more stopped containers."""
    from minirun.frontend import client, lifecycle

    fe = frontend(ctx, store_root)
    if attach or interactive:
        if len(containers) > 1:
            raise click.UsageError("you cannot start and attach multiple containers at once")
        cid, rec = fe.find(containers[0])
        if lifecycle.is_running(fe, rec):
            raise MinirunError(f"container {containers[0]} is already running")
        code = lifecycle.start(fe, cid, attach=True, interactive=interactive,
                               detach_keys=client.parse_detach_keys(detach_keys))
        sys.exit(code)

    def one(ref):
        cid, rec = fe.find(ref)
        if not lifecycle.is_running(fe, rec):
            lifecycle.start(fe, cid)
        click.echo(ref)

    each(containers, one)


@command("exec", context_settings=_SETTINGS)
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
    from minirun.frontend import execute

    fe = frontend(ctx, store_root)
    status = execute.exec_in(fe, container, command, env=env, env_files=env_file, user=user,
                             workdir=workdir, privileged=privileged, tty=tty,
                             interactive=interactive, detach=detach)
    sys.stdout.flush()
    sys.exit(status)
