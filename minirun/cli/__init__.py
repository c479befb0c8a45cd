"""minirun's command line: click, kept thin.

Every command parses its flags and calls a library function; nothing here
knows how containers work.  Commands live in per-area modules and are imported
only when invoked (LazyGroup), so `minirun state` does not pay for importing
the image or network code.

Two families share one binary:
  * the OCI runtime verbs, with runc's flags and output, for engines
    (containerd, podman) and the conformance suite: cli/oci.py;
  * the Docker-like front end and image/network/volume management.
`minirun run --bundle DIR ID` (or `run ID` in a bundle directory) is the OCI
verb; `minirun run IMAGE [CMD...]` is the Docker-like one (see cli/oci.py).
"""
import importlib
import sys

import click

from minirun import OCI_VERSION, __version__

# command name -> "module:attribute"; add an entry to expose a new command.
COMMANDS = {
    "spec": "minirun.cli.oci:spec",
    "create": "minirun.cli.oci:create",
    "start": "minirun.cli.oci:start",
    "state": "minirun.cli.oci:state",
    "kill": "minirun.cli.oci:kill",
    "delete": "minirun.cli.oci:delete",
    "run": "minirun.cli.oci:run",
    "list": "minirun.cli.oci:list_containers",
    "ps": "minirun.cli.oci:ps",
    "features": "minirun.cli.oci:features",
    "exec": "minirun.cli.oci:exec_",
    "pause": "minirun.cli.oci:pause",
    "resume": "minirun.cli.oci:resume",
    "update": "minirun.cli.oci:update",
    "events": "minirun.cli.oci:events",
    "pull": "minirun.cli.image:pull",
    "images": "minirun.cli.image:images",
    "rmi": "minirun.cli.image:rmi",
    "image": "minirun.cli.image:image",
    "load": "minirun.cli.image:load",
    "save": "minirun.cli.image:save",
    "login": "minirun.cli.image:login",
    "logout": "minirun.cli.image:logout",
    "unpack": "minirun.cli.image:unpack",
    "bundle": "minirun.cli.image:bundle",
    "network": "minirun.cli.network:network",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


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
    """minirun: an OCI container runtime in Python.

    \b
    Example:
      minirun spec && minirun run --bundle . demo
    """
    from minirun import log

    log.configure(log_file, log_format, debug)
    if trace:
        from minirun.linux import trace as tracing

        tracing.enable()
    ctx.obj = {"root": root}


def main(argv=None):
    from minirun import log
    from minirun.errors import MinirunError

    try:
        cli.main(args=argv, prog_name="minirun", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        log.error(e.format_message())
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except MinirunError as e:
        log.error(str(e))
        sys.exit(e.exit_code)
    except OSError as e:
        from minirun.runtime.spawn import describe_os_error

        log.error(describe_os_error(e))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
