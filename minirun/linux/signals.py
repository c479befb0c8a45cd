"""Signal numbers and names, from the C module `_signal`.

The `signal` module wraps these in enum classes at import, which costs about
as much as starting the interpreter; `kill` and `delete` need only the numbers.
"""
from _signal import (NSIG, SIG_DFL, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT,  # noqa: F401
                     SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH)
from _signal import signal as set_handler  # noqa: F401
import _signal


def number(name):
    """The number of "KILL", "SIGKILL", "sigkill", "RTMIN" ...; None if unknown."""
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if "_" in name:  # SIG_DFL, SIG_BLOCK ... are not signals
        return None
    value = getattr(_signal, name, None)
    return value if isinstance(value, int) else None
