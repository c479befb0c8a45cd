"""`run`'s create in a worker forked by the monitor's forkserver (worker.py create).

Creating a container in the CLI means importing most of the front end (the
run options, bundle, image, network and volume code) in every `run`: more
time than the creation itself.  The forkserver has those imports done, so
the CLI (cli/dockercalls.py) can ask the monitor for the creation and import
only the monitor client.  Same code (dockercalls.create_from), same working
directory and environment (relative paths, `-e KEY` with the host's value),
same errors with their exit codes, which the CLI prints as it would its own.

An image that is not in the store is left to the CLI ({"fallback": true}):
pulling prints progress on the CLI's terminal.

    request (first message on fd 3): {"kw", "store", "cwd", "env", "umask"}
    reply: {"create": true, "id"} | {"create": true, "error", "code"}
           | {"create": true, "fallback": true}
"""
import os
import socket
import sys
import traceback

from minirun import jsonio
from minirun.errors import MinirunError


def serve(root, report_fd=3):
    report = socket.socket(fileno=report_fd)
    try:
        msg = _create(root, jsonio.loads(report.recv(1 << 20)))
    except MinirunError as e:
        msg = {"error": str(e), "code": e.exit_code}
    except OSError as e:
        from minirun.runtime.spawn import describe_os_error

        msg = {"error": describe_os_error(e), "code": 1}
    except BaseException as e:  # noqa: B902 -- a bug: its traceback in the monitor's log
        traceback.print_exc(file=sys.stderr)
        msg = {"error": f"{type(e).__name__}: {e}", "code": 1}
    msg["create"] = True
    report.send(jsonio.dumps(msg).encode())
    return 0


def _create(root, req):
    from minirun.cli import dockercalls
    from minirun.frontend.create import local_image
    from minirun.frontend.records import Frontend

    os.chdir(req["cwd"])
    if req.get("umask") is not None:
        os.umask(req["umask"])
    os.environ.clear()
    os.environ.update(req["env"])
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in req["kw"].items()}
    fe = Frontend(req["store"], root)
    try:
        image = local_image(fe, kw["image"])
    except MinirunError:
        image = None  # (a malformed reference: the CLI's create says what is wrong first)
    if image is None:
        return {"fallback": True}
    return {"id": dockercalls.create_from(fe, kw)["Id"]}
