"""Capabilities, through python-prctl (bounding, effective, permitted,
inheritable) and prctl(PR_CAP_AMBIENT) for the ambient set, which
python-prctl does not cover."""
import prctl

from minirun.linux import syscalls
from minirun.linux.trace import step

from minirun.linux.capnames import CAP_NAMES, CAP_NUMBERS, last_cap, parse  # noqa: F401


def current_bounding():
    return {c for c in range(last_cap() + 1) if prctl.capbset_read(c)}


def apply_bounding(keep):
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    dropped = [c for c in range(last_cap() + 1) if c not in keep and prctl.capbset_read(c)]
    step("prctl", f"PR_CAPBSET_DROP {','.join(CAP_NAMES[c] for c in dropped) or '-'}",
         "capabilities not granted can never come back, even through setuid binaries",
         "capabilities(7)")
    for cap in dropped:
        prctl.capbset_drop(cap)


def apply_sets(effective, permitted, inheritable):
    step("capset", f"effective={len(effective)} permitted={len(permitted)} "
         f"inheritable={len(inheritable)}", "the process's own capability sets",
         "capset(2)")
    every = list(range(last_cap() + 1))
    prctl.set_caps(
        (list(effective), prctl.CAP_EFFECTIVE, True),
        ([c for c in every if c not in effective], prctl.CAP_EFFECTIVE, False),
        (list(permitted), prctl.CAP_PERMITTED, True),
        ([c for c in every if c not in permitted], prctl.CAP_PERMITTED, False),
        (list(inheritable), prctl.CAP_INHERITABLE, True),
        ([c for c in every if c not in inheritable], prctl.CAP_INHERITABLE, False),
    )


def apply_ambient(ambient):
    syscalls.ambient_clear()
    for cap in sorted(ambient):
        step("prctl", f"PR_CAP_AMBIENT_RAISE {CAP_NAMES[cap]}",
             "ambient capabilities survive execve for a non-root user", "capabilities(7)")
        syscalls.ambient_raise(cap)


def set_keepcaps(on):
    prctl.set_keepcaps(on)


def set_no_new_privs():
    step("prctl", "PR_SET_NO_NEW_PRIVS 1", "execve can never grant privileges (setuid, file caps)",
         "prctl(2)")
    prctl.set_no_new_privs(1)


def set_dumpable(on):
    step("prctl", f"PR_SET_DUMPABLE {int(on)}",
         "a non-dumpable process's /proc/<pid> cannot be opened by the container", "prctl(2)")
    prctl.set_dumpable(on)


def set_child_subreaper():
    syscalls.set_child_subreaper()


def set_pdeathsig(sig):
    prctl.set_pdeathsig(sig)
