"""The front end's library API for a container's life, in one place.

    from minirun.frontend import lifecycle
    from minirun.frontend.records import Frontend
    from minirun.frontend.runopts import RunOptions

    fe = Frontend(store_root=None, runtime_root="/run/minirun")
    rec = lifecycle.create(fe, RunOptions.from_flags("busybox", ["sleep", "60"], name="web"))
    lifecycle.start(fe, rec["Id"])                  # detached; attach=True waits for the exit
    lifecycle.stop(fe, rec["Id"]); lifecycle.remove(fe, rec["Id"])

Where each job lives:
  create.py   RunOptions -> record, name, rootfs, volumes, config.json
  records.py  the records on disk (ids, names, the record document)
  control.py  start, stop, kill, wait, pause, unpause, rm, current state
  worker.py   the steps the monitor runs: start the runtime container, handle an exit
  restart.py  the restart policy and its back-off
Every step that makes something undoes it when a later step fails: a failed
`run` leaves no record, name, rootfs, volume, cgroup, veth or runtime state.
"""
__all__ = ["DEFAULT_STOP_TIMEOUT", "NotRunning", "current_state", "is_running", "kill", "pause",
           "remove", "start", "stop", "unpause", "wait", "RunError", "create", "resolve_image",
           "exit_code", "restart_delay", "RunOptions"]

from minirun.frontend.control import (DEFAULT_STOP_TIMEOUT, NotRunning,  # noqa: F401
                                      current_state, is_running, kill, pause, remove, start,
                                      stop, unpause, wait)
from minirun.frontend.create import RunError, create, resolve_image  # noqa: F401
from minirun.frontend.restart import exit_code, restart_delay  # noqa: F401
from minirun.frontend.runopts import RunOptions  # noqa: F401
