"""The common forms of the Docker-like `ps` and `run`, parsed without click.

Importing click and the command modules costs more than a `ps` of a hundred
containers, and `run -d` is called in loops.  When a call uses only the plain
forms below, it is parsed here into the keywords the click command would get
and handed to the same code (cli/dockercalls.py): same output, same errors,
same exit codes.  Anything else -- help, a bad or unknown flag, a flag whose
value click converts (`--cpu-shares 2`), `--` or a value that starts with
`-`, runc's forms of these verbs (`ps ID`, `run --bundle`, one positional with
./config.json) -- returns False and goes through click, the reference CLI,
which also produces the usage errors.

The option tables name click's parameters; tests/frontend/test_fe_fastpath.py
checks them against the click commands (a new click option of `run` fails
the test until it is listed here or excluded) and that both paths give the
same keywords, RunOptions and output for a set of command lines.
"""
import os

from minirun.cli.fastcommon import leave, take_options

# global options before the verb: value options, flags
GLOBAL_VALUES = {"--root": "root"}
GLOBAL_FLAGS = {"--debug": "debug"}

FLAG, VALUE, MULTIPLE = "flag", "value", "multiple"

# option string -> (click parameter name, kind)
PS_OPTIONS = {
    "-a": ("all_", FLAG), "--all": ("all_", FLAG),
    "-q": ("quiet", FLAG), "--quiet": ("quiet", FLAG),
    "--no-trunc": ("no_trunc", FLAG),
    "-l": ("latest", FLAG), "--latest": ("latest", FLAG),
    "-f": ("filters", MULTIPLE), "--filter": ("filters", MULTIPLE),
    "--format": ("fmt", VALUE),
    "--store": ("store_root", VALUE),
}
PS_DEFAULTS = {"all_": False, "quiet": False, "no_trunc": False, "last": None, "latest": False,
               "filters": (), "fmt": None, "store_root": None}

_RUN_FLAGS = {"-d": "detach", "--detach": "detach", "--rm": "rm", "-P": "publish_all",
              "--publish-all": "publish_all", "--read-only": "read_only",
              "--privileged": "privileged", "--no-healthcheck": "no_healthcheck",
              "--init": "init", "-i": "interactive", "--interactive": "interactive",
              "-t": "tty", "--tty": "tty"}
_RUN_VALUES = {"--name": "name", "--network": "network", "--net": "network",
               "-h": "hostname", "--hostname": "hostname", "-u": "user", "--user": "user",
               "-w": "workdir", "--workdir": "workdir", "--entrypoint": "entrypoint",
               "-m": "memory", "--memory": "memory", "--memory-swap": "memory_swap",
               "--cpus": "cpus", "--shm-size": "shm_size", "--userns": "userns",
               "--restart": "restart", "--health-cmd": "health_cmd",
               "--health-interval": "health_interval", "--health-timeout": "health_timeout",
               "--health-start-period": "health_start_period",
               "--stop-signal": "stop_signal", "--cidfile": "cidfile",
               "--detach-keys": "detach_keys", "--store": "store_root"}
_RUN_MULTIPLE = {"-e": "env", "--env": "env", "--env-file": "env_file",
                 "-v": "volumes", "--volume": "volumes", "--mount": "mount", "--tmpfs": "tmpfs",
                 "-p": "publish", "--publish": "publish", "--expose": "expose",
                 "--add-host": "add_host", "--dns": "dns", "--dns-search": "dns_search",
                 "--ulimit": "ulimits", "--sysctl": "sysctls", "--device": "device",
                 "--cap-add": "cap_add", "--cap-drop": "cap_drop",
                 "--security-opt": "security_opt", "-l": "labels", "--label": "labels",
                 "--label-file": "label_file", "--log-opt": "log_opts"}
RUN_OPTIONS = {**{k: (v, FLAG) for k, v in _RUN_FLAGS.items()},
               **{k: (v, VALUE) for k, v in _RUN_VALUES.items()},
               **{k: (v, MULTIPLE) for k, v in _RUN_MULTIPLE.items()}}
# what click gives a parameter that is not on the command line (besides None, ()
# and False), and the parameters left to click (their values are converted)
RUN_DEFAULTS = {"network": "bridge", "restart": "no", "sig_proxy": True, "cpu_shares": None,
                "pids_limit": None, "health_retries": None, "stop_timeout": None}


def _parse_options(args, table, out):
    """Consume leading options of `args` into `out` (click's names); returns the
    rest, or None when anything is not a plain form of the table."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-" or not a.startswith("-"):
            break
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            entry = table.get(name)
            if entry is None or (eq and entry[1] == FLAG):
                return None
            if entry[1] != FLAG and not eq:
                i += 1
                if i >= len(args) or args[i].startswith("-"):
                    return None
                value = args[i]
            _set(out, entry, value)
        else:
            # -a, -aq (flags only), -e VALUE, -eVALUE
            first = table.get(a[:2])
            if first is None:
                return None
            if first[1] == FLAG:
                entries = [table.get("-" + ch) for ch in a[1:]]
                if any(e is None or e[1] != FLAG for e in entries):
                    return None
                for e in entries:
                    _set(out, e, None)
            else:
                value = a[2:]
                if not value:
                    i += 1
                    if i >= len(args) or args[i].startswith("-"):
                        return None
                    value = args[i]
                _set(out, first, value)
        i += 1
    return args[i:]


def _set(out, entry, value):
    name, kind = entry
    if kind == FLAG:
        out[name] = True
    elif kind == MULTIPLE:
        out[name] = out.get(name, ()) + (value,)
    else:
        out[name] = value


def parse(args):
    """-> (verb, global options, keywords) or None to defer to click."""
    glob = {}
    rest = take_options(args, GLOBAL_VALUES, GLOBAL_FLAGS, glob)
    if not rest or os.environ.get("MINIRUN_TRACE"):  # click's --trace envvar
        return None
    verb, rest = rest[0], rest[1:]
    if verb == "ps":
        kw = {}
        rest = _parse_options(rest, PS_OPTIONS, kw)
        if rest is None or rest:
            return None  # `ps ID` is runc's
        return verb, glob, dict(PS_DEFAULTS, **kw)
    if verb == "run":
        kw = {}
        rest = _parse_options(rest, RUN_OPTIONS, kw)
        if not rest or rest[0] == "--":
            return None
        image, command = rest[0], tuple(rest[1:])
        if not command and os.path.isfile("config.json"):
            return None  # runc's `run ID` in a bundle directory (cli/dispatch.py)
        out = {name: () if kind == MULTIPLE else (False if kind == FLAG else None)
               for name, kind in RUN_OPTIONS.values()}
        out.update(RUN_DEFAULTS)
        out.update(kw, image=image, command=command)
        return verb, glob, out
    return None


def try_run(args):
    """Run `args` if they are a plain ps/run; False to let click have them."""
    parsed = parse(args)
    if parsed is None:
        return False
    verb, glob, kw = parsed
    import gc

    gc.disable()  # a short-lived process making few cycles (as cli/fastpath.py)
    from minirun import log
    from minirun.cli import guarded

    log.configure(None, "text", glob.get("debug", False))
    try:
        status = guarded(lambda: _call(verb, glob.get("root", "/run/minirun"), kw)) or 0
    except SystemExit as e:  # run's exit status (the container's), or guarded's
        status = e.code
    leave(status)


def _call(verb, root, kw):
    from minirun.cli import dockercalls
    from minirun.frontend.records import Frontend

    fe = Frontend(kw.pop("store_root"), root)
    if verb == "ps":
        dockercalls.ps(fe, **kw)
        return 0
    detach = kw.pop("detach")
    sig_proxy = kw.pop("sig_proxy")
    detach_keys = kw.pop("detach_keys")
    # the container is created by a worker the monitor forks (imports done),
    # or here when the monitor cannot (dockercalls.create_in_monitor)
    dockercalls.run(fe, kw, detach, sig_proxy, detach_keys, dockercalls.create_in_monitor)
    return 0
