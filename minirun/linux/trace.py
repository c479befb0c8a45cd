"""Optional narration of kernel steps (`minirun --trace`, MINIRUN_TRACE=1).

Every wrapper in minirun.linux calls `step(...)`.  When tracing is off that is
one global lookup and a return, so it costs nothing measurable.  When on, each
step is printed to stderr (or the trace file) as it happens, with the reason
and the man page to read.  Child processes inherit the setting through the
environment, so the steps taken inside the new namespaces show up too.
"""
import os
import sys

_out = None  # a writable text stream when tracing, else None
_fd = None   # its file descriptor, when it has one


def enable(stream=None):
    global _out, _fd
    _out = stream or sys.stderr
    try:
        _fd = _out.fileno()
    except (AttributeError, OSError, ValueError):
        _fd = None  # e.g. io.StringIO in tests
    os.environ["MINIRUN_TRACE"] = "1"


def enabled():
    return _out is not None


def step(call, detail="", why="", man=""):
    if _out is None:
        return
    line = f"[minirun {os.getpid()}] {call}"
    if detail:
        line += f" {detail}"
    if why:
        line += f"  # {why}"
    if man:
        line += f" [{man}]"
    try:
        if _fd is not None:
            # One write(2) per line, straight to the fd: the parent and the
            # container's processes share it, and a whole line written at once
            # never interleaves with another process's (pipes: up to PIPE_BUF;
            # files and terminals: one write is one append).  No Python buffer
            # is involved, so nothing is duplicated across fork.
            os.write(_fd, (line + "\n").encode(errors="replace"))
        else:
            _out.write(line + "\n")
            _out.flush()
    except (OSError, ValueError):
        pass


if os.environ.get("MINIRUN_TRACE") == "1":
    enable()
