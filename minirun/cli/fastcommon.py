"""What the click-free paths share (cli/fastpath.py for the OCI verbs,
cli/frontfast.py for `ps`/`run`, cli/imagefast.py for `pull`/`unpack`):
reading plain leading options, and leaving without the interpreter's teardown."""
import os
import sys


def take_options(args, values, flags, out):
    """Consume leading options (`--name VALUE`, `--name=VALUE`, flags) into
    `out`; returns the rest, or None when one is unknown or lacks its value.

    values: option -> key; flags: option -> key, or None for a flag that is
    accepted and ignored."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        name, eq, value = args[i].partition("=")
        if name in values:
            if not eq:
                i += 1
                if i >= len(args):
                    return None
                value = args[i]
            out[values[name]] = value
        elif name in flags and not eq:
            if flags[name]:
                out[flags[name]] = True
        else:
            return None
        i += 1
    return args[i:]


def leave(status):
    """Exit once the output is out, without the interpreter's teardown (freeing
    every module and object one by one: ~2 ms for `state`, ~10 ms after a
    pull); the kernel releases our locks and fds.  The ordinary sys.exit when
    stdout cannot be flushed, when something registered an atexit handler, or
    for a status that is not a number."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(status)
    if isinstance(status, int) and atexit._ncallbacks() == 0:
        os._exit(status)
    sys.exit(status)
