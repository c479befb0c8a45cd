"""Capabilities, through python-prctl (bounding, effective, permitted,
inheritable) and prctl(PR_CAP_AMBIENT) for the ambient set, which
python-prctl does not cover."""
import prctl

from minirun.linux import syscalls
from minirun.linux.trace import step

# Every capability name the kernel may know, by number (linux/capability.h).
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAP_NAMES)}


def last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def parse(names, where):
    """Map spec capability names to numbers; an unknown name is an error."""
    from minirun.errors import ConfigError

    out = set()
    for name in names or []:
        num = CAP_NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if num is None:
            raise ConfigError(f"unknown capability {name!r} in {where}")
        out.add(num)
    return out


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
    prctl.set_child_subreaper(1)


def set_pdeathsig(sig):
    prctl.set_pdeathsig(sig)
