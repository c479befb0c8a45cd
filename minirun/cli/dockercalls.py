"""What `run`, `create` and `ps` do once their flags are parsed: one body shared by
the click commands (cli/run.py, cli/containers.py) and the click-free fast path
(cli/frontfast.py), so both print the same text and exit with the same codes.

No click here: the fast path imports this module, and click costs more than a
`ps` itself.  Arguments are click's keyword names (`kw` of `run`).
"""
import os
import sys

from minirun.errors import MinirunError

# click parameter name -> RunOptions.from_flags keyword, where they differ
_RENAMED = {"env_file": "env_files", "volumes": "volumes", "mount": "mounts",
            "label_file": "label_files", "device": "devices", "add_host": "add_hosts",
            "rm": "auto_remove"}
_CLI_ONLY = {"image", "command", "store_root", "cidfile", "detach", "sig_proxy", "detach_keys"}


def options_from(kw):
    """The click keywords of run/create -> RunOptions (BadOption: exit 125)."""
    from minirun.frontend.runopts import RunOptions

    flags = {_RENAMED.get(k, k): v for k, v in kw.items() if k not in _CLI_ONLY}
    return RunOptions.from_flags(kw["image"], kw["command"], **flags)


def create_from(fe, kw):
    """create with --cidfile: the file must not exist, and is written after create."""
    from minirun.frontend import lifecycle

    opts = options_from(kw)
    cidfile = kw.get("cidfile")
    if cidfile and os.path.exists(cidfile):
        raise lifecycle.RunError(f"container ID file found, make sure the other container isn't "
                                 f"running or delete {cidfile}")
    rec = lifecycle.create(fe, opts, progress=sys.stderr)
    if cidfile:
        try:
            with open(cidfile, "x") as f:
                f.write(rec["Id"])
        except OSError as e:
            lifecycle.remove(fe, rec["Id"], force=True, volumes=True)
            raise lifecycle.RunError(f"failed to create the container ID file: "
                                     f"{e.strerror.lower()}") from None
    return rec


class Relayed(MinirunError):
    """An error of the create worker, printed as the CLI's own (same exit code)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.exit_code = code


def create_in_monitor(fe, kw):
    """create_from, run by a worker the monitor forks from its forkserver, which
    has the front end imported already (frontend/createworker.py); here, when
    the monitor says so (forkserver not ready, image to pull) or is older.
    Returns the new container's id."""
    from minirun.frontend import client

    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        return create_from(fe, kw)["Id"]
    umask = os.umask(0o022)
    os.umask(umask)
    reply = client.request(fe.root, {"op": "create", "kw": kw, "store": fe.store_root,
                                     "cwd": cwd, "env": dict(os.environ), "umask": umask})
    if not reply.get("create") or reply.get("fallback"):
        return create_from(fe, kw)["Id"]
    if "error" in reply:
        raise Relayed(reply["error"], reply.get("code", 125))
    return reply["id"]


def run(fe, kw, detach=False, sig_proxy=True, detach_keys=None, create=None):
    """`run`: create (create_from, or `create` given the same arguments, which
    returns the id), then start detached (print the id once it runs) or
    attached (exit with the container's status).  Exits the process."""
    from minirun.frontend import client, control

    if kw["tty"] and kw["interactive"] and not detach and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")
    keys = client.parse_detach_keys(detach_keys)
    cid = create(fe, kw) if create else create_from(fe, kw)["Id"]
    try:
        if detach:
            control.start(fe, cid)
            sys.stdout.write(cid + "\n")
            sys.stdout.flush()
            return
        code = control.start(fe, cid, attach=True, interactive=kw["interactive"],
                             sig_proxy=sig_proxy, detach_keys=keys)
    except client.StartFailed:
        discard(fe, cid)
        raise
    except BaseException:
        if detach:
            discard(fe, cid)
        raise
    sys.stdout.flush()
    sys.exit(code)


def discard(fe, cid):
    """A `run` that could not start leaves nothing behind."""
    from minirun.errors import ContainerNotFound
    from minirun.frontend import lifecycle

    try:
        lifecycle.remove(fe, cid, force=True, volumes=True)
    except ContainerNotFound:
        pass


def ps(fe, all_=False, quiet=False, no_trunc=False, last=None, latest=False, filters=(),
       fmt=None):
    """`ps`: the rows, as ids (-q), the table, json lines or a template per row."""
    from minirun.frontend import listing, views

    rows = listing.ps_rows(fe, all_, filters, last, latest, trunc=not no_trunc)
    if quiet:
        lines = [r["ID"] for r in rows]
    elif not fmt or fmt == "table":
        lines = [views.table(rows, views.PS_COLUMNS)]
    elif fmt == "json":
        from minirun import jsonio  # json.dumps's text, without json's imports

        lines = [jsonio.dumps(r) for r in rows]
    else:
        from minirun.frontend import template

        lines = template.render_list(fmt, rows)  # may fail on a later row: print as we go
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
