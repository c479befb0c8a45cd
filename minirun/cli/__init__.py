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

The click application is in cli/app.py.  Importing click costs tens of
milliseconds, and engines call create/start/state/kill/delete for every
container, so those calls, when their arguments are plain, are parsed by
cli/fastpath.py without click (same library calls, same output).
"""
import sys

# command name -> "module:attribute"; add an entry to expose a new command.
COMMANDS = {
    "spec": "minirun.cli.oci:spec",
    "create": "minirun.cli.oci:create",
    "start": "minirun.cli.oci:start",
    "state": "minirun.cli.oci:state",
    "kill": "minirun.cli.oci:kill",
    "delete": "minirun.cli.oci:delete",
    "run": "minirun.cli.docker:run_dispatch",
    "list": "minirun.cli.oci:list_containers",
    "ps": "minirun.cli.docker:ps_dispatch",
    "features": "minirun.cli.oci:features",
    "exec": "minirun.cli.docker:exec_dispatch",
    "pause": "minirun.cli.oci:pause",
    "resume": "minirun.cli.oci:resume",
    "update": "minirun.cli.oci:update",
    "events": "minirun.cli.oci:events",
    "pull": "minirun.cli.image:pull",
    "push": "minirun.cli.image:push",
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
    "container": "minirun.cli.docker:container",
    "logs": "minirun.cli.docker:logs",
    "stop": "minirun.cli.docker:stop",
    "rm": "minirun.cli.docker:rm",
    "inspect": "minirun.cli.docker:inspect",
    "stats": "minirun.cli.docker:stats",
    "top": "minirun.cli.docker:top",
    "wait": "minirun.cli.docker:wait",
    "restart": "minirun.cli.docker:restart",
    "port": "minirun.cli.docker:port",
    "rename": "minirun.cli.docker:rename",
    "volume": "minirun.cli.docker:volume",
    "system": "minirun.cli.docker:system",
    "kube": "minirun.cli.kube:kube",
    "compose": "minirun.cli.compose:compose",
    "build": "minirun.cli.build:build",
    "tag": "minirun.cli.build:tag",
    "history": "minirun.cli.build:history",
    "commit": "minirun.cli.build:commit",
}


def guarded(call):
    """Run call(); a MinirunError or OSError becomes one line on stderr (and
    in --log), never a traceback."""
    from minirun import log
    from minirun.errors import MinirunError

    try:
        return call()
    except MinirunError as e:
        log.error(str(e))
        sys.exit(e.exit_code)
    except OSError as e:
        from minirun.runtime.spawn import describe_os_error

        log.error(describe_os_error(e))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    from minirun.cli import fastpath

    if fastpath.try_run(args):  # exits when it handled the call
        return
    from minirun.cli.app import run_click

    run_click(args)
