"""`minirun compose ...`: Docker Compose's commands over minirun/compose/ (parse and print only)."""
import json
import os
import sys

import click

from minirun.errors import MinirunError


class Options:
    """The group's options, parsed once: which files, which project."""

    def __init__(self, files, project_name, env_files, project_directory, profiles,
                 store_root, root):
        self.files = files
        self.project_name = project_name
        self.env_files = env_files
        self.project_directory = project_directory
        self.profiles = list(profiles) or [p for p in os.environ.get(
            "COMPOSE_PROFILES", "").split(",") if p]
        self.store_root = store_root
        self.root = root

    def project(self):
        from minirun.compose import loader, model
        from minirun.compose.project import Project
        from minirun.frontend.records import Frontend

        files = self.files or [f for f in os.environ.get("COMPOSE_FILE", "").split(
            os.pathsep) if f]
        source = loader.load(files, self.project_name, self.env_files or None,
                             self.project_directory)
        config = model.normalize(source)
        return Project(Frontend(self.store_root, self.root), config, source, self.profiles)


pass_opts = click.make_pass_decorator(Options)


@click.group("compose")
@click.option("-f", "--file", "files", multiple=True, metavar="FILE",
              help="Compose file (repeatable; later files override earlier ones).")
@click.option("-p", "--project-name", help="Project name (default: the directory's name).")
@click.option("--env-file", "env_files", multiple=True, metavar="FILE",
              help="Environment file(s) for interpolation instead of .env.")
@click.option("--project-directory", metavar="DIR",
              help="Base of relative paths (default: the first file's directory).")
@click.option("--profile", "profiles", multiple=True, help="Enable services of a profile.")
@click.option("--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
              help="Image store, which also holds containers and volumes.")
@click.pass_context
def compose(ctx, files, project_name, env_files, project_directory, profiles, store_root):
    """Run multi-container applications described in compose.yaml.

    \b
    Examples:
      minirun compose up -d
      minirun compose ps
      minirun compose logs -f web
      minirun compose exec web sh
      minirun compose down -v
    """
    root = (ctx.find_root().obj or {}).get("root", "/run/minirun")
    ctx.obj = Options(list(files), project_name, list(env_files), project_directory, profiles,
                      store_root, root)


def _scale(items):
    out = {}
    for item in items:
        name, eq, n = item.partition("=")
        if not eq or not n.isdigit():
            raise click.UsageError(f"invalid scale {item!r}: use SERVICE=NUM")
        out[name] = int(n)
    return out


@compose.command()
@click.option("-d", "--detach", is_flag=True, help="Run in the background.")
@click.option("--build", is_flag=True, help="Build images before starting.")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if unchanged.")
@click.option("--no-recreate", is_flag=True, help="Keep existing containers even if changed.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("--no-start", is_flag=True, help="Create, don't start.")
@click.option("--remove-orphans", is_flag=True, help="Remove containers of services no "
              "longer in the file.")
@click.option("--scale", "scale", multiple=True, metavar="SERVICE=NUM",
              help="Number of containers of a service.")
@click.option("--wait", is_flag=True, help="Detach once every container runs (and is "
              "healthy, if it has a health check).")
@click.option("--abort-on-container-exit", "abort", is_flag=True,
              help="Stop everything when one container stops; exit with its code.")
@click.option("--exit-code-from", metavar="SERVICE", help="Exit with that service's code "
              "(implies --abort-on-container-exit).")
@click.argument("services", nargs=-1)
@pass_opts
def up(opts, detach, build, force_recreate, no_recreate, no_deps, no_start, remove_orphans,
       scale, wait, abort, exit_code_from, services):
    """Create and start containers (attached to their output unless -d).

    \b
    Examples:
      minirun compose up -d
      minirun compose up --scale web=2 -d web
      minirun compose up --wait
      minirun compose up --exit-code-from tests
      minirun compose up   # attached: Ctrl-C stops everything
    """
    if detach and (abort or exit_code_from):
        raise click.UsageError("-d and --abort-on-container-exit/--exit-code-from conflict")
    code = opts.project().up(services, detach=detach or no_start or wait, build=build,
                             force_recreate=force_recreate, no_recreate=no_recreate,
                             no_deps=no_deps, no_start=no_start, scale=_scale(scale),
                             remove_orphans=remove_orphans, wait=wait, abort_on_exit=abort,
                             exit_code_from=exit_code_from)
    sys.exit(code)


@compose.command()
@click.option("-v", "--volumes", is_flag=True, help="Remove named volumes declared in the "
              "file and anonymous volumes.")
@click.option("--remove-orphans", is_flag=True, help="Also containers of services no longer "
              "in the file.")
@pass_opts
def down(opts, volumes, remove_orphans):
    """Stop and remove containers, networks (and with -v volumes).

    \b
    Examples:
      minirun compose down
      minirun compose down -v --remove-orphans
    """
    opts.project().down(volumes=volumes, remove_orphans=remove_orphans)


@compose.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Also stopped containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--services", is_flag=True, help="Only service names.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="table for people, json for scripts.")
@click.argument("services_", nargs=-1, metavar="[SERVICE]...")
@pass_opts
def ps(opts, all_, quiet, services, fmt, services_):
    """List the project's containers.

    \b
    Examples:
      minirun compose ps
      minirun compose ps -a --services
    """
    from minirun.compose import output
    from minirun.frontend import views

    project = opts.project()
    rows = output.ps_rows(project.fe, project.containers(services_ or None))
    if not all_:
        rows = [r for r in rows if r["State"] in ("running", "restarting", "paused")]
    if quiet:
        for r in rows:
            click.echo(r["ID"])
    elif services:
        for name in dict.fromkeys(r["Service"] for r in rows):
            click.echo(name)
    elif fmt == "json":
        click.echo(json.dumps(rows))
    else:
        click.echo(views.table(rows, output.PS_COLUMNS))


@compose.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("-n", "--tail", default="all", help="Lines from the end of each log (or all).")
@click.option("--no-color", is_flag=True, help="No colours.")
@click.option("--no-log-prefix", is_flag=True, help="No `service-1  | ` prefix.")
@click.argument("services", nargs=-1)
@pass_opts
def logs(opts, follow, timestamps, tail, no_color, no_log_prefix, services):
    """Show the containers' output.

    \b
    Examples:
      minirun compose logs -f web
      minirun compose logs -t -n 20
    """
    from minirun.compose import output

    if tail == "all":
        tail_n = None
    elif tail.isdigit():
        tail_n = int(tail)
    else:
        raise click.UsageError(f"invalid --tail {tail!r}")
    project = opts.project()
    recs = project.containers(services or None)
    kw = dict(tail=tail_n, prefix=not no_log_prefix, timestamps=timestamps,
              no_colour=no_color)
    try:
        if follow:
            output.follow(project.fe, recs, **kw)
        else:
            output.show(recs, **kw)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


@compose.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run in the background.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="No pseudo-terminal (default: "
              "one, if stdin is a terminal).")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set a variable.")
@click.option("-u", "--user", help="Run as this user.")
@click.option("-w", "--workdir", help="Working directory.")
@click.option("--index", type=int, default=1, show_default=True, help="Which replica.")
@click.option("--privileged", is_flag=True, help="All capabilities.")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_opts
def exec_(opts, detach, no_tty, env, user, workdir, index, privileged, service, command):
    """Run a command in a running service container.

    \b
    Examples:
      minirun compose exec web sh
      minirun compose exec -T --index 2 web cat /etc/hosts
    """
    tty = not no_tty and not detach and os.isatty(0)
    code = opts.project().exec(service, list(command), index=index, tty=tty, detach=detach,
                               env=env, user=user, workdir=workdir, privileged=privileged)
    sys.stdout.flush()
    sys.exit(code)


@compose.command(context_settings={"allow_interspersed_args": False})
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-d", "--detach", is_flag=True, help="Run in the background.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="No pseudo-terminal.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set a variable.")
@click.option("--entrypoint", help="Override the entrypoint.")
@click.option("--name", help="Container name.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("--service-ports", is_flag=True, help="Publish the service's ports.")
@click.option("-u", "--user", help="Run as this user.")
@click.option("-w", "--workdir", help="Working directory.")
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_opts
def run(opts, remove, detach, no_tty, env, entrypoint, name, no_deps, service_ports, user,
        workdir, service, command):
    """Run a one-off command in a new container of a service.

    \b
    Examples:
      minirun compose run --rm web echo hello
      minirun compose run --rm --no-deps -e DEBUG=1 web sh
    """
    tty = not no_tty and os.isatty(0)
    code = opts.project().run(service, list(command), remove=remove, detach=detach, tty=tty,
                              env=env, entrypoint=entrypoint, no_deps=no_deps,
                              service_ports=service_ports, name=name, user=user,
                              workdir=workdir)
    sys.stdout.flush()
    sys.exit(code or 0)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def start(opts, services):
    """Start existing containers.

    \b
    Examples:
      minirun compose start
      minirun compose start db
    """
    opts.project().start(services)


@compose.command()
@click.option("-t", "--timeout", type=int, help="Seconds before killing (default: each "
              "service's stop_grace_period, else 10).")
@click.argument("services", nargs=-1)
@pass_opts
def stop(opts, timeout, services):
    """Stop running containers.

    \b
    Examples:
      minirun compose stop
      minirun compose stop -t 2 web
    """
    opts.project().stop(services, timeout)


@compose.command()
@click.option("-t", "--timeout", type=int, help="Seconds before killing.")
@click.argument("services", nargs=-1)
@pass_opts
def restart(opts, timeout, services):
    """Restart containers.

    \b
    Examples:
      minirun compose restart web
    """
    opts.project().restart(services, timeout)


@compose.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True,
              help="Signal to send.")
@click.argument("services", nargs=-1)
@pass_opts
def kill(opts, sig, services):
    """Send a signal to the running containers.

    \b
    Examples:
      minirun compose kill
      minirun compose kill -s HUP web
    """
    opts.project().kill(services, sig)


@compose.command()
@click.option("-f", "--force", is_flag=True, help="Don't ask (there is no question here).")
@click.option("-s", "--stop", is_flag=True, help="Stop running containers first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove their anonymous volumes.")
@click.argument("services", nargs=-1)
@pass_opts
def rm(opts, force, stop, volumes, services):
    """Remove stopped service containers.

    \b
    Examples:
      minirun compose rm
      minirun compose rm -s -v web
    """
    opts.project().rm(services, stop=stop, volumes=volumes)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def pause(opts, services):
    """Freeze the running containers.

    \b
    Examples:
      minirun compose pause web
    """
    opts.project().pause(services)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def unpause(opts, services):
    """Thaw paused containers.

    \b
    Examples:
      minirun compose unpause web
    """
    opts.project().pause(services, resume=True)


@compose.command()
@click.option("--index", type=int, default=1, show_default=True, help="Which replica.")
@click.argument("service")
@click.argument("private_port")
@pass_opts
def port(opts, index, service, private_port):
    """The host address a service's port is published on.

    \b
    Examples:
      minirun compose port web 80
      minirun compose port --index 2 dns 53/udp
    """
    for host in opts.project().port(service, private_port, index):
        click.echo(host)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def build(opts, services):
    """Build the services' images (build: in the file).

    \b
    Examples:
      minirun compose build
      minirun compose -f compose.yaml build app
    """
    opts.project().build(services)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def pull(opts, services):
    """Pull the services' images.

    \b
    Examples:
      minirun compose pull
    """
    opts.project().pull(services)


@compose.command()
@click.argument("scales", nargs=-1, required=True, metavar="SERVICE=NUM...")
@pass_opts
def scale(opts, scales):
    """Set the number of containers of services.

    \b
    Examples:
      minirun compose scale web=3 worker=2
    """
    wanted = _scale(scales)
    opts.project().up(list(wanted), detach=True, no_deps=True, scale=wanted)


@compose.command()
@click.option("--services", is_flag=True, help="Only the service names.")
@click.option("--volumes", is_flag=True, help="Only the volume names.")
@click.option("--hash", "hash_", metavar="SERVICE|*", help="The config hash of services.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              help="yaml (as docker compose config) or json.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate.")
@pass_opts
def config(opts, services, volumes, hash_, fmt, quiet):
    """Validate and print the project in canonical form.

    \b
    Examples:
      minirun compose config
      minirun compose config --services
      minirun compose -p demo config --format json
    """
    from minirun.compose import loader, model, project

    files = opts.files or [f for f in os.environ.get("COMPOSE_FILE", "").split(os.pathsep) if f]
    source = loader.load(files, opts.project_name, opts.env_files or None,
                         opts.project_directory)
    doc = model.normalize(source)
    if quiet:
        return
    if services:
        click.echo("\n".join(doc["services"]))
    elif volumes:
        click.echo("\n".join(doc.get("volumes") or {}))
    elif hash_:
        names = list(doc["services"]) if hash_ == "*" else hash_.split(",")
        for n in names:
            if n not in doc["services"]:
                raise MinirunError(f"no such service: {n}")
            click.echo(f"{n} {project.config_hash(doc['services'][n])}")
    elif fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False,
                                  allow_unicode=True), nl=False)


@compose.command()
@click.argument("services", nargs=-1)
@pass_opts
def top(opts, services):
    """The processes of each running container.

    \b
    Examples:
      minirun compose top
      minirun compose top web
    """
    import subprocess

    from minirun.frontend import execute

    project = opts.project()
    for rec in project.containers(services or None, stopped=False):
        pids = execute.processes(project.fe, rec["Id"])
        out = subprocess.run(["ps", "-o", "uid,pid,ppid,c,stime,tty,time,cmd", "-e"],
                             capture_output=True, text=True)
        lines = out.stdout.splitlines()
        click.echo(rec["Name"].lstrip("/"))
        if lines:
            click.echo(lines[0])
            for line in lines[1:]:
                fields = line.split()
                if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) in pids:
                    click.echo(line)
        click.echo("")
