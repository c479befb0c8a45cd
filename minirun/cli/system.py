"""volume, system (prune), events and import: the Docker-like commands beyond
single containers."""
import json

import click

from minirun.cli.dockerlike import DockerGroup, command, each, format_option, frontend, show
from minirun.cli.dockerlike import store_option
from minirun.cli.containers import confirm


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
    from minirun.frontend import options, volumes

    info, _ = volumes.create(frontend(ctx, store_root), name,
                             labels=options.parse_labels((), labels))
    click.echo(info["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@format_option
@store_option
@click.pass_context
def volume_ls(ctx, quiet, fmt, store_root):
    """List volumes."""
    from minirun.frontend import volumes

    infos = volumes.list_volumes(frontend(ctx, store_root))
    if quiet:
        for i in infos:
            click.echo(i["Name"])
        return
    show(infos, fmt, [("DRIVER", "Driver"), ("VOLUME NAME", "Name")], sep="     ")


@volume.command("inspect")
@click.option("-f", "--format", "fmt", help="A Go template like '{{.Mountpoint}}'.")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_inspect(ctx, fmt, store_root, names):
    """Details of volumes as JSON."""
    from minirun.frontend import template, volumes

    fe = frontend(ctx, store_root)
    parsed = template.parse(fmt) if fmt else None
    docs = [volumes.inspect(fe, n) for n in names]
    if parsed:
        for doc in docs:
            click.echo(parsed.execute(doc))
    else:
        click.echo(json.dumps(docs, indent=4))


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="No error if it does not exist.")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_rm(ctx, force, store_root, names):
    """Remove volumes (not while a container uses them)."""
    from minirun.frontend import volumes

    fe = frontend(ctx, store_root)

    def one(name):
        volumes.remove(fe, name, force=force)
        click.echo(name)

    each(names, one)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Named volumes too, not only anonymous.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@store_option
@click.pass_context
def volume_prune(ctx, all_, force, store_root):
    """Remove volumes no container uses."""
    from minirun.frontend import views, volumes

    if not confirm(force, "all local volumes not used by at least one container"):
        return
    removed = volumes.prune(frontend(ctx, store_root), all_volumes=all_)
    if removed:
        click.echo("Deleted Volumes:\n" + "\n".join(n for n, _ in removed) + "\n")
    click.echo(f"Total reclaimed space: {views.human_size(sum(s for _, s in removed))}")


@click.group(cls=DockerGroup)
def system():
    """System-wide commands: prune, events."""


@system.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Also images no container uses.")
@click.option("--volumes", is_flag=True, help="Also unused anonymous volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="until=TIMESTAMP|DURATION, label=KEY[=VALUE] (for containers).")
@store_option
@click.pass_context
def system_prune(ctx, all_, volumes, force, filters, store_root):
    """Remove stopped containers, unused networks, unused images (-a), volumes (--volumes)."""
    from minirun.frontend import listing, prune, views
    from minirun.frontend import volumes as vol

    listing.parse_filters(filters, listing.PRUNE_KEYS)
    what = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if all_ else
                "all dangling build cache")
    if not confirm(force, "\n  - " + "\n  - ".join(what) + "\n"):
        return
    fe = frontend(ctx, store_root)
    removed, space = prune.containers(fe, filters,
                                      on_error=lambda e: click.echo(f"minirun: {e}", err=True))
    if removed:
        click.echo("Deleted Containers:\n" + "\n".join(removed) + "\n")
    nets = prune.networks(fe)
    if nets:
        click.echo("Deleted Networks:\n" + "\n".join(nets) + "\n")
    if volumes:
        gone = vol.prune(fe)
        if gone:
            click.echo("Deleted Volumes:\n" + "\n".join(n for n, _ in gone) + "\n")
            space += sum(s for _, s in gone)
    untagged, freed = prune.images(fe, all_)
    if untagged:
        click.echo("Deleted Images:\n" + "\n".join(untagged) + "\n")
    click.echo(f"Total reclaimed space: {views.human_size(space + freed)}")


@command("events")
@click.option("--since", help="Show events since a timestamp or a duration ago (10m).")
@click.option("--until", help="Stop at a timestamp or a duration ago.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="container=, event=, image=, label=, type=container")
@format_option
@store_option
@click.pass_context
def events(ctx, since, until, filters, fmt, store_root):
    """Real-time events of front-end containers (Docker's create, start, die, oom,
    health_status, kill, stop, pause, unpause, rename, destroy)."""
    from minirun.frontend import events as events_mod
    from minirun.frontend import template

    fe = frontend(ctx, store_root)
    matches, since_t, until_t = events_mod.selection(fe, filters, since, until)
    parsed = template.parse(fmt) if fmt and fmt != "json" else None
    try:
        for ev in events_mod.read(fe.store_root, since_t, until_t, follow=True,
                                  matches=matches):
            if fmt == "json":
                click.echo(json.dumps(ev))
            elif parsed:
                click.echo(parsed.execute(ev))
            else:
                click.echo(events_mod.text(ev))
    except (KeyboardInterrupt, BrokenPipeError):
        pass
system.add_command(events)


@command("import")
@click.option("-m", "--message", default="", help="A comment for the image's history.")
@click.option("-c", "--change", multiple=True, hidden=True)
@store_option
@click.argument("source")
@click.argument("reference", required=False)
@click.pass_context
def import_(ctx, message, change, store_root, source, reference):
    """Make an image from a filesystem tarball (FILE, or - for stdin): the
    opposite of `export`."""
    import sys

    from minirun.errors import BadOption
    from minirun.frontend import importer

    if change:
        raise BadOption("--change is not supported by minirun import")
    fe = frontend(ctx, store_root)
    if source == "-":
        image_id = importer.import_tarball(fe, sys.stdin.buffer, reference, message)
    else:
        with open(source, "rb") as f:
            image_id = importer.import_tarball(fe, f, reference, message, source)
    click.echo(image_id)
