"""The verbs both worlds have: runc's for OCI containers, Docker's for front-end ones.

    verb            Docker's form when                       runc's form when
    run, create     an IMAGE is given                        --bundle/-b or another runc-only
                                                             flag, or one ID with ./config.json
    start kill      the first argument names a front-end     anything else: an OCI container
    pause update    container (name, id or id prefix) and    under --root, or an unknown id
    exec            is not an OCI container under --root     (runc's "container does not exist")
    resume/unpause
    delete/rm
    ps              no ID is given                           an ID is given (its processes)
    events          no ID is given                           an ID is given (runc's stats)

runc's flags for engines (exec --process, kill --all, update --resources,
create --bundle ...) and the global --log (containerd's shim passes it on every
call) always mean runc's form, so containerd's and podman's calls are
unchanged; podman's ids are 64-hex and match a front-end container only by
its full id.  The decision costs a stat or two (see
frontend/lookup.py); the engines' plain create/start/kill/delete calls are
usually decided in cli/fastpath.py without importing click at all.
docs/frontend.md has the same table.
"""
import os

import click

from minirun.cli import containers, oci, run, system
from minirun.frontend import lookup

_OCI_CREATE_ONLY = {"--bundle", "-b", "--pid-file", "--console-socket", "--no-pivot",
                    "--no-new-keyring", "--preserve-fds", "--keep", "--pidfd-socket"}
_OCI_EXEC_ONLY = {"--process", "-p", "--pid-file", "--console-socket", "--cwd", "--cap", "-c",
                  "--no-new-privs", "--preserve-fds", "--ignore-paused", "--additional-gids",
                  "-g", "--process-label", "--apparmor", "--cgroup"}
_OCI_FLAGS = {"kill": {"--all", "-a"}, "delete": set(), "update": {"--resources", "-r"},
              "events": {"--stats", "--interval"}}


def value_options(cmd):
    """Option strings of `cmd` that take a value."""
    out = set()
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out


def scan(args, value_opts, stop_at_positional=True):
    """(options seen, positionals) of an argument list, Docker-style."""
    seen, positionals = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positionals += args[i + 1:]
            break
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            seen.append(name)
            if name in value_opts and "=" not in a:
                i += 1
        elif a.startswith("-") and len(a) > 1:
            seen.append(a[:2])
            # -p8080:80 carries its value; -it are flags; -e X takes the next one
            for j, ch in enumerate(a[1:], 1):
                if "-" + ch in value_opts:
                    if j == len(a) - 1:
                        i += 1
                    break
        else:
            positionals.append(a)
            if stop_at_positional:
                positionals += args[i + 1:]
                break
        i += 1
    return seen, positionals


def _store(args):
    for i, a in enumerate(args):
        if a == "--store" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--store="):
            return a.split("=", 1)[1]
    return None


def by_image(docker_cmd, oci_cmd):
    """run/create: runc's when a runc-only flag is given, or exactly one
    positional and ./config.json exists (runc's bundle default is the cwd)."""
    def pick(args, root):
        seen, positionals = scan(args, value_options(docker_cmd) | value_options(oci_cmd))
        if any(s in _OCI_CREATE_ONLY for s in seen):
            return True
        return len(positionals) == 1 and os.path.isfile("config.json")
    return pick


def by_container(docker_cmd, oci_cmd, oci_flags=(), without_id_is_oci=True):
    """The first positional decides (lookup.docker_side); runc-only flags win, and
    more containers than runc's verb takes (`rm a b`) mean Docker's."""
    most = sum(1 for p in oci_cmd.params if isinstance(p, click.Argument))

    def pick(args, root):
        seen, positionals = scan(args, value_options(docker_cmd) | value_options(oci_cmd))
        if any(s in oci_flags for s in seen):
            return True
        if not positionals:
            return without_id_is_oci
        if oci_cmd.name != "exec" and len(positionals) > most:
            return False
        return not lookup.docker_side(positionals[0], root, _store(args))
    return pick


def by_id_given(docker_cmd, oci_cmd):
    """ps/events: runc's verb takes an ID, Docker's takes none."""
    def pick(args, root):
        _, positionals = scan(args, value_options(docker_cmd) | value_options(oci_cmd),
                              stop_at_positional=False)
        return bool(positionals)
    return pick


class Dispatcher(click.Command):
    """A top-level name shared by runc's verb and the Docker-like command."""

    def __init__(self, name, docker_cmd, oci_cmd, pick, help):
        super().__init__(name, help=help, context_settings={"ignore_unknown_options": True})
        self.docker_cmd = docker_cmd
        self.oci_cmd = oci_cmd
        self.oci_name = oci_cmd.callback.__name__  # for cli/examples.py
        self.pick = pick

    def make_context(self, info_name, args, parent=None, **extra):
        args = list(args)
        if args in (["--help"], ["-h"]):
            self._both_helps(info_name, parent)
        root = (parent.obj or {}).get("root", "/run/minirun") if parent else "/run/minirun"
        engine = parent is not None and parent.params.get("log_file")  # containerd's calls
        target = self.oci_cmd if engine or self.pick(args, root) else self.docker_cmd
        return target.make_context(info_name, args, parent=parent, **extra)

    def _both_helps(self, info_name, parent):
        """`VERB --help`: both forms, Docker's first, with the rule between them."""
        out = [self.help or "", ""]
        for title, cmd in (("Docker's form (a front-end container or an image)",
                            self.docker_cmd),
                           ("runc's form (an OCI container under --root)", self.oci_cmd)):
            ctx = click.Context(cmd, info_name=info_name, parent=parent)
            out += [f"== {title} ==", cmd.get_help(ctx), ""]
        click.echo("\n".join(out).rstrip())
        raise click.exceptions.Exit(0)


_RULE = (" A front-end container (name, id or id prefix) gets Docker's behaviour; an OCI "
         "container under --root gets runc's.")

run_dispatch = Dispatcher("run", run.run, oci.run, by_image(run.run, oci.run),
                     "Run a container: `run [OPTIONS] IMAGE [CMD...]` (Docker-like) or runc's "
                     "`run --bundle DIR ID`.")
create_dispatch = Dispatcher("create", run.create, oci.create, by_image(run.create, oci.create),
                        "Create a container: `create [--name N] IMAGE [CMD...]` (Docker-like) "
                        "or runc's `create --bundle DIR ID`.")
ps_dispatch = Dispatcher("ps", containers.ps, oci.ps, by_id_given(containers.ps, oci.ps),
                    "List containers (Docker-like); `ps ID` lists a container's processes "
                    "(runc).")
events_dispatch = Dispatcher("events", system.events, oci.events, by_id_given(system.events, oci.events),
                        "Docker's event stream of front-end containers; `events ID` is runc's "
                        "(stats and OOM of an OCI container).")
exec_dispatch = Dispatcher("exec", run.exec_, oci.exec_,
                           by_container(run.exec_, oci.exec_, _OCI_EXEC_ONLY),
                           "Run a command in a running container." + _RULE)


def _by_container(name, docker_cmd, oci_cmd, what):
    return Dispatcher(name, docker_cmd, oci_cmd,
                      by_container(docker_cmd, oci_cmd, _OCI_FLAGS.get(oci_cmd.name, ())),
                      what + _RULE)


start_dispatch = _by_container("start", run.start, oci.start, "Start containers.")
kill_dispatch = _by_container("kill", containers.kill, oci.kill, "Send a signal to containers.")
pause_dispatch = _by_container("pause", containers.pause, oci.pause,
                               "Freeze all processes of containers.")
resume_dispatch = _by_container("resume", containers.unpause, oci.resume,
                                "Thaw paused containers (also `unpause`).")
unpause_dispatch = _by_container("unpause", containers.unpause, oci.resume,
                                 "Thaw paused containers (also `resume`).")
delete_dispatch = _by_container("delete", containers.rm, oci.delete,
                                "Remove containers (also `rm`).")
rm_dispatch = _by_container("rm", containers.rm, oci.delete, "Remove containers (also `delete`).")
update_dispatch = _by_container("update", containers.update, oci.update,
                                "Update a container's resource limits.")
