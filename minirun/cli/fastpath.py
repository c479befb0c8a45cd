"""The OCI verbs engines call for every container, parsed without click.

containerd's shim runs `create`, `start`, `state`, `kill` and `delete` (with
`--root R --log F --log-format json` in front) for each container; importing
click would add tens of milliseconds to each call.  When a call uses only the
plain forms below, it is parsed here and handed to the same library functions
cli/oci.py calls.  Anything else -- help, a bad flag, a missing argument, any
other verb -- returns False and goes through click, the reference CLI, which
also produces the error messages.
"""
import os
import sys

from minirun.cli.fastcommon import leave, take_options

# global options taking a value -> keyword; global flags that are accepted
GLOBAL_VALUES = {"--root": "root", "--log": "log_file", "--log-format": "log_format"}
GLOBAL_FLAGS = {"--debug": "debug", "--systemd-cgroup": None, "--trace": "trace"}

# verb -> (positional names (a trailing "?" = optional), value options, flag options)
VERBS = {
    "create": (("container_id",),
               {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file",
                "--console-socket": "console_socket", "--preserve-fds": "preserve_fds"},
               {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}),
    "run": (("container_id",),
            {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file",
             "--console-socket": "console_socket", "--preserve-fds": "preserve_fds"},
            {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring",
             "--detach": "detach", "-d": "detach", "--keep": "keep"}),
    "start": (("container_id",), {}, {}),
    "state": (("container_id",), {}, {}),
    "kill": (("container_id", "signal?"), {}, {"--all": "all_processes", "-a": "all_processes"}),
    "delete": (("container_id",), {}, {"--force": "force", "-f": "force"}),
    "list": ((), {"--format": "fmt", "-f": "fmt"}, {"--quiet": "quiet", "-q": "quiet"}),
}


def parse(args):
    """-> (verb, global options, verb options) or None to defer to click."""
    glob = {}
    rest = take_options(args, GLOBAL_VALUES, GLOBAL_FLAGS, glob)
    if not rest or rest[0] not in VERBS:
        return None
    verb = rest[0]
    positional, values, flags = VERBS[verb]
    opts = {}
    rest = take_options(rest[1:], values, flags, opts)
    if rest is None:
        return None
    required = [p for p in positional if not p.endswith("?")]
    if not len(required) <= len(rest) <= len(positional):
        return None
    if any(a.startswith("-") for a in rest):
        return None  # options after positionals: let click decide
    for name, value in zip(positional, rest):
        opts[name.rstrip("?")] = value
    if glob.get("log_format", "text") not in ("text", "json"):
        return None
    if opts.get("fmt", "table") not in ("table", "json"):
        return None
    if verb in ("create", "run"):
        if "preserve_fds" in opts:
            if not opts["preserve_fds"].isdigit():
                return None
            opts["preserve_fds"] = int(opts["preserve_fds"])
        if "bundle" not in opts and not os.path.isfile("config.json"):
            return None  # `run/create IMAGE` (the Docker-like form) is click's to dispatch
        if verb == "run" and "bundle" not in opts:
            return None
    if verb in ("start", "kill", "delete") and "log_file" not in glob:
        # (containerd's shim passes --log on every call: always runc's verbs)
        from minirun.frontend import lookup

        if lookup.docker_side(opts["container_id"], glob.get("root", "/run/minirun")):
            return None  # a front-end container: Docker's verb (cli/dispatch.py)
    return verb, glob, opts


def try_run(args):
    parsed = parse(args)
    if parsed is None:
        return False
    verb, glob, opts = parsed
    import gc

    # A verb lives for milliseconds and makes few reference cycles: the
    # collector's passes over every object imported would be pure overhead.
    gc.disable()
    from minirun import log
    from minirun.cli import guarded

    log.configure(glob.get("log_file"), glob.get("log_format", "text"), glob.get("debug", False))
    if glob.get("trace"):
        from minirun.linux import trace

        trace.enable()
    root = glob.get("root", "/run/minirun")
    try:
        status = guarded(lambda: _call(verb, root, opts)) or 0
    except SystemExit as e:  # guarded(): an error, already printed
        status = e.code
    leave(status)


def _call(verb, root, opts):
    cid = opts.pop("container_id", None)
    if verb == "create":
        from minirun.runtime.create import create

        create(root, cid, **opts).close()
    elif verb == "run":
        from minirun.runtime.run import run

        return run(root, cid, **opts)
    elif verb == "start":
        from minirun.runtime.start import start

        start(root, cid)
    elif verb == "state":
        from minirun import jsonio
        from minirun.runtime.query import state

        sys.stdout.write(jsonio.dumps(state(root, cid), indent=2) + "\n")
    elif verb == "kill":
        from minirun.runtime.kill import kill, parse_signal

        kill(root, cid, parse_signal(opts.get("signal", "SIGTERM")),
             opts.get("all_processes", False))
    elif verb == "delete":
        from minirun.runtime.delete import delete

        delete(root, cid, opts.get("force", False))
    elif verb == "list":
        return _list(root, opts.get("fmt", "table"), opts.get("quiet", False))
    return 0


def _list(root, fmt, quiet):
    """`list` as cli/oci.py prints it: ids, the OCI states as JSON, or a table."""
    from minirun.runtime.query import list_states

    problems = []
    states = list_states(root, problems)
    if quiet:
        lines = [s["id"] for s in states]
    elif fmt == "json":
        from minirun import jsonio

        lines = [jsonio.dumps(states)]
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root")
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    sys.stdout.write("".join(line + "\n" for line in lines))
    if problems:
        from minirun import log

        sys.stdout.flush()
        for problem in problems:  # the others are listed; each unreadable one gets a line
            log.error(problem)
        return 1
    return 0
