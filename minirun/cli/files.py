"""cp, diff, export and attach: a front-end container's files and terminal."""
import sys

import click

from minirun.cli.dockerlike import command, frontend, store_option
from minirun.errors import BadOption, MinirunError


def _split_ref(arg):
    """'CONTAINER:PATH' -> (container, path); a local path -> (None, path)."""
    if arg == "-" or arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    return ref, path


@command()
@click.option("-a", "--archive", is_flag=True, help="Keep uid/gid of the source.")
@click.option("-L", "--follow-link", is_flag=True, help="Follow a symbolic link in SRC.")
@click.option("-q", "--quiet", is_flag=True, help="Accepted for Docker compatibility.")
@store_option
@click.argument("src")
@click.argument("dest")
@click.pass_context
def cp(ctx, archive, follow_link, quiet, store_root, src, dest):
    """Copy files between a container (running or stopped) and the host.

    \b
    minirun cp CONTAINER:SRC_PATH DEST_PATH|-
    minirun cp SRC_PATH|- CONTAINER:DEST_PATH
    "-" is a tar archive on stdout (or from stdin, unpacked into a directory).
    """
    from minirun.frontend import copy

    (src_ref, src_path), (dest_ref, dest_path) = _split_ref(src), _split_ref(dest)
    if src_ref and dest_ref:
        raise BadOption("copying between containers is not supported")
    if not src_ref and not dest_ref:
        raise BadOption("must specify at least one container source")
    fe = frontend(ctx, store_root)
    if src_ref:
        if not src_path:
            raise BadOption("source path cannot be empty")
        copy.copy_from(fe, src_ref, src_path, dest_path, archive, follow_link,
                       stdout=sys.stdout.buffer)
        sys.stdout.flush()
    else:
        if not dest_path:
            raise BadOption("destination path cannot be empty")
        copy.copy_to(fe, dest_ref, src_path, dest_path, archive, follow_link,
                     stdin=sys.stdin.buffer)


@command()
@store_option
@click.argument("container")
@click.pass_context
def diff(ctx, store_root, container):
    """Changes to a container's files since it was made: A added, C changed, D deleted."""
    from minirun.frontend import copy

    for kind, path in copy.diff(frontend(ctx, store_root), container):
        click.echo(f"{kind} {path}")


@command()
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@store_option
@click.argument("container")
@click.pass_context
def export(ctx, output, store_root, container):
    """A container's filesystem as a tar archive."""
    from minirun.frontend import copy

    fe = frontend(ctx, store_root)
    if output:
        import os

        tmp = output + ".tmp"
        try:
            with open(tmp, "wb") as f:
                copy.export(fe, container, f)
            os.replace(tmp, output)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    if sys.stdout.isatty():
        raise MinirunError("cowardly refusing to save to a terminal. Use the -o flag or "
                           "redirect")
    copy.export(fe, container, sys.stdout.buffer)
    sys.stdout.flush()


@command()
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.option("--sig-proxy/--no-sig-proxy", default=True,
              help="Forward signals to the container (without a terminal).")
@click.option("--detach-keys", help="Keys that detach (default ctrl-p,ctrl-q).")
@store_option
@click.argument("container")
@click.pass_context
def attach(ctx, no_stdin, sig_proxy, detach_keys, store_root, container):
    """Attach this terminal to a running container's input and output.

    Ctrl-P Ctrl-Q (or --detach-keys) detaches and leaves it running."""
    from minirun.frontend import client, control

    fe = frontend(ctx, store_root)
    code = control.attach(fe, container, stdin=not no_stdin, sig_proxy=sig_proxy,
                          detach_keys=client.parse_detach_keys(detach_keys))
    sys.stdout.flush()
    sys.exit(code)
