"""What the Docker-like commands share: usage errors exit 125, --store, the
Frontend of a call, "go on after an error" for many containers, --format output.

The commands live by job: cli/run.py (run, create, start, exec: the run
options), cli/containers.py (ps, stop, kill, rm, logs, inspect, cp, ...),
cli/system.py (volume, system, events, import), cli/dispatch.py (names shared
with runc's verbs).
"""
import json

import click

from minirun.errors import MinirunError


class _UsageExit125:
    """Usage errors of Docker-like commands exit 125, like docker's CLI."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            e.exit_code = 125
            raise


class DockerCommand(_UsageExit125, click.Command):
    pass


class DockerGroup(_UsageExit125, click.Group):
    command_class = DockerCommand

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            e.exit_code = 125
            raise


store_option = click.option(
    "--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
    help="Image store, which also holds containers and volumes (default /var/lib/minirun).")

format_option = click.option(
    "--format", "fmt", metavar="TEMPLATE",
    help="json, table, 'table TEMPLATE' or a Go template like '{{.Names}}'.")


def frontend(ctx, store_root):
    from minirun.frontend.records import Frontend

    return Frontend(store_root, ctx.find_root().obj["root"])


def command(name=None, **kw):
    kw.setdefault("cls", DockerCommand)
    return click.command(name, **kw)


def each(refs, fn):
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


def show(items, fmt, columns, sep="   "):
    """A list command's output: the default table, `json` (one object a line),
    `table TEMPLATE` (a header from the field names) or a template per item.
    The template is parsed before anything is printed (exit 125 when invalid)."""
    from minirun.frontend import template, views

    if not fmt or fmt == "table":
        click.echo(views.table(items, columns, sep=sep))
        return
    if fmt == "json":
        for item in items:
            click.echo(json.dumps(item))
        return
    for line in template.render_list(fmt, items):
        click.echo(line)


def show_one(doc, fmt):
    """inspect-style output of one document (with a template) as text."""
    from minirun.frontend import template

    return template.render(fmt, doc)
