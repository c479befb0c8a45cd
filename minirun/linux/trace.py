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


def enable(stream=None):
    global _out
    _out = stream or sys.stderr
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
        _out.write(line + "\n")
        _out.flush()
    except (OSError, ValueError):
        pass


if os.environ.get("MINIRUN_TRACE") == "1":
    enable()
