"""Optional narration of kernel steps (`minirun --trace`, MINIRUN_TRACE=1).

Every wrapper in minirun.linux calls `step(...)`.  When tracing is off that is
one global lookup and a return, so it costs nothing measurable.  When on, each
step is printed to stderr (or the trace file) as it happens, with the reason
and the man page to read.  Child processes inherit the setting through the
environment, so the steps taken inside the new namespaces show up too.

For tests of crash safety, MINIRUN_FAULT_STEP=N makes the process that
reads it SIGKILL itself at its N-th step (its forked children do not count):
killing at every N shows that no instant of a verb leaks a kernel object.
Unset, it costs nothing: the check sits behind the same `_out is None` test.
"""
import os
import sys

_out = None  # a writable text stream when tracing, else None
_fd = None   # its file descriptor, when it has one
_SILENT = object()  # _out when only the fault hook is on
_fault_at = 0       # MINIRUN_FAULT_STEP: SIGKILL ourselves at this step
_fault_pid = 0
_steps = 0


def enable(stream=None):
    global _out, _fd
    _out = stream or sys.stderr
    try:
        _fd = _out.fileno()
    except (AttributeError, OSError, ValueError):
        _fd = None  # e.g. io.StringIO in tests
    os.environ["MINIRUN_TRACE"] = "1"


def enabled():
    return _out is not None and _out is not _SILENT


def step(call, detail="", why="", man=""):
    if _out is None:
        return
    if _fault_at:
        _count_towards_fault()
    if _out is _SILENT:
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


def checkpoint():
    """A point where a crash matters but nothing is worth narrating (state
    files): counted by MINIRUN_FAULT_STEP like a step, silent in the trace."""
    if _fault_at:
        _count_towards_fault()


def _count_towards_fault():
    global _steps
    if os.getpid() != _fault_pid:
        return
    _steps += 1
    if _steps == _fault_at:
        import signal

        os.kill(_fault_pid, signal.SIGKILL)


def _arm_fault(value):
    global _fault_at, _fault_pid, _out
    if value.isdigit() and int(value) > 0:
        _fault_at, _fault_pid = int(value), os.getpid()
        if _out is None:
            _out = _SILENT


if os.environ.get("MINIRUN_TRACE") == "1":
    enable()
if os.environ.get("MINIRUN_FAULT_STEP"):
    _arm_fault(os.environ["MINIRUN_FAULT_STEP"])
