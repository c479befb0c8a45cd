"""The click application: the `minirun` group and its lazily imported commands."""
import importlib
import sys

import click

from minirun import OCI_VERSION, __version__
from minirun.cli import COMMANDS


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        from minirun.cli import examples

        examples.attach(name, cmd)  # `--help` examples (sets click's epilog only)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default="/run/minirun", show_default=True, metavar="DIR",
              help="Directory for container state (keep it on a tmpfs).")
@click.option("--log", "log_file", metavar="FILE", help="Append log and error lines to FILE.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Format of --log lines; json gives {level,msg,time}.")
@click.option("--debug", is_flag=True, help="Log debug messages too.")
@click.option("--trace", is_flag=True, envvar="MINIRUN_TRACE",
              help="Print every kernel step (namespaces, mounts, pivot_root, ...) as it happens.")
@click.option("--systemd-cgroup", is_flag=True, hidden=True,
              help="Accepted for runc compatibility; minirun manages cgroupfs directly.")
@click.option("--rootless", default="auto", hidden=True, help="Accepted for runc compatibility.")
@click.version_option(__version__, "-v", "--version",
                      message=f"minirun version %(version)s\nspec: {OCI_VERSION}")
@click.pass_context
def cli(ctx, root, log_file, log_format, debug, trace, systemd_cgroup, rootless):
    """minirun: an OCI container runtime in Python, built to be read.

    runc's verbs (create, start, state, kill, delete, ...) run OCI bundles;
    the Docker-like commands (run IMAGE, ps, logs, images, network, volume,
    ...) add images, networks and volumes on top.  `--trace` narrates every
    kernel step; docs/tour/README.md is a guided tour of how containers work.

    \b
    Examples:
      minirun run --bundle images/out/busybox demo          # runc's run: a bundle
      minirun --trace run --bundle images/out/busybox demo  # ... and every kernel step
      minirun run --rm busybox echo hello                   # Docker-like: an image
      minirun spec && minirun run --bundle . demo           # a bundle of your own
    """
    from minirun import log

    log.configure(log_file, log_format, debug)
    if trace:
        from minirun.linux import trace as tracing

        tracing.enable()
    ctx.obj = {"root": root}


def run_click(argv=None):
    from minirun import log
    from minirun.cli import guarded

    def call():
        try:
            cli.main(args=argv, prog_name="minirun", standalone_mode=False)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()  # click's usage text; the --log file still gets the line
            log.error(e.format_message(), echo=False)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            sys.exit(130)

    guarded(call)
    sys.exit(0)
