"""Capability names and numbers: pure data, for validating a config without
loading python-prctl and libcap (linux/caps.py applies the sets)."""

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
