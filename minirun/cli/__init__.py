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
    "create": "minirun.cli.dispatch:create_dispatch",
    "start": "minirun.cli.dispatch:start_dispatch",
    "state": "minirun.cli.oci:state",
    "kill": "minirun.cli.dispatch:kill_dispatch",
    "delete": "minirun.cli.dispatch:delete_dispatch",
    "run": "minirun.cli.dispatch:run_dispatch",
    "list": "minirun.cli.oci:list_containers",
    "ps": "minirun.cli.dispatch:ps_dispatch",
    "features": "minirun.cli.oci:features",
    "exec": "minirun.cli.dispatch:exec_dispatch",
    "pause": "minirun.cli.dispatch:pause_dispatch",
    "resume": "minirun.cli.dispatch:resume_dispatch",
    "unpause": "minirun.cli.dispatch:unpause_dispatch",
    "update": "minirun.cli.dispatch:update_dispatch",
    "events": "minirun.cli.dispatch:events_dispatch",
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
    "container": "minirun.cli.containers:container",
    "logs": "minirun.cli.containers:logs",
    "stop": "minirun.cli.containers:stop",
    "rm": "minirun.cli.dispatch:rm_dispatch",
    "inspect": "minirun.cli.containers:inspect",
    "stats": "minirun.cli.containers:stats",
    "top": "minirun.cli.containers:top",
    "wait": "minirun.cli.containers:wait",
    "restart": "minirun.cli.containers:restart",
    "port": "minirun.cli.containers:port",
    "rename": "minirun.cli.containers:rename",
    "volume": "minirun.cli.system:volume",
    "system": "minirun.cli.system:system",
    "cp": "minirun.cli.files:cp",
    "attach": "minirun.cli.files:attach",
    "diff": "minirun.cli.files:diff",
    "export": "minirun.cli.files:export",
    "import": "minirun.cli.system:import_",
    "completion": "minirun.cli.completion:completion",
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


# What works without root: help, versions, completion scripts, runc's spec/features.
_UNPRIVILEGED = {"spec", "features", "completion", "help"}


def _needs_root(args):
    import os

    if os.geteuid() == 0 or not args or {"--help", "-h", "--version", "-v"} & set(args):
        return False
    words = [a for a in args if not a.startswith("-")]
    return not (words and words[0] in _UNPRIVILEGED)


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if _needs_root(args):
        sys.stderr.write("minirun: minirun needs root (it makes namespaces, mounts, cgroups and "
                         "network devices): run it as root, e.g. `sudo minirun "
                         f"{' '.join(args[:2])}`\n")
        sys.exit(1)
    if args[:1] in (["pull"], ["unpack"]):  # plain forms without click (cli/imagefast.py)
        __import__("minirun.cli.imagefast", fromlist=["_"]).try_run(args)
    from minirun.cli import fastpath

    if fastpath.try_run(args):  # exits when it handled the call
        return
    from minirun.cli import frontfast

    if frontfast.try_run(args):  # plain Docker-like ps/run: exits when it handled the call
        return
    from minirun.cli.app import run_click

    run_click(args)
