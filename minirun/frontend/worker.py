"""The short-lived processes the monitor runs, without the CLI (no click import):

    python -m minirun.frontend.worker ROOT start  ID          lifecycle.start_worker
    python -m minirun.frontend.worker ROOT exited ID STATUS   lifecycle.exit_worker
    python -m minirun.frontend.worker ROOT health ID CMD...   one health check (exec)

The store comes from $MINIRUN_STORE, which the monitor sets per container.
"""
import os
import sys


def _health(fe, cid, cmd):
    """Run a health check command in the container; its exit status."""
    from minirun.runtime import exec as exec_mod
    from minirun.runtime.state import Container

    with Container.load(fe.root, cid, lock=False) as c:
        config = c.config() or {}
    process = exec_mod.process_from_flags(config, cmd)
    return exec_mod.execute(fe.root, cid, process)


def main(argv):
    root, op, cid, *rest = argv
    from minirun.frontend.records import Frontend

    fe = Frontend(None, root)
    if op == "start":
        from minirun.frontend import lifecycle

        code = _guarded(lambda: lifecycle.start_worker(fe, cid))
    elif op == "exited":
        from minirun.frontend import lifecycle

        code = _guarded(lambda: lifecycle.exit_worker(fe, cid, int(rest[0])))
    elif op == "health":
        code = _guarded(lambda: _health(fe, cid, rest))
    else:
        print(f"unknown worker operation {op!r}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # nothing to tear down; interpreter shutdown would only delay the monitor


def _guarded(call):
    from minirun.errors import MinirunError

    try:
        return call() or 0
    except MinirunError as e:
        print(f"minirun: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1) or 1
    except OSError as e:
        from minirun.runtime.spawn import describe_os_error

        print(f"minirun: {describe_os_error(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    main(sys.argv[1:])
