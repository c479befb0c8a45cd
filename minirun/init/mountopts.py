"""Translating OCI mount options ("ro", "nosuid", "rbind", "mode=755") into
mount(2) flags, propagation flags and the filesystem's data string."""
from minirun.linux.syscalls import (
    MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME,
    MS_NOEXEC, MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME,
    MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE,
)

# option -> (clear?, flag).  "clear" options switch a flag off (rw, suid, ...).
FLAGS = {
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID), "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV), "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC), "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME), "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW), "symfollow": (True, MS_NOSYMFOLLOW),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# Options that mean something to the runtime, not to mount(2).
IGNORED = {"tmpcopyup", "defaults"}


def parse(options):
    """-> (flags, propagation_flags_list, data_string_or_None)"""
    flags = 0
    propagation = []
    data = []
    for opt in options or []:
        if opt in FLAGS:
            clear, bit = FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in IGNORED:
            continue
        else:
            data.append(opt)
    return flags, propagation, ",".join(data) or None


def root_propagation(name):
    """linux.rootfsPropagation -> (flags before the root switch, flags after it).

    pivot_root refuses shared mounts and a bind of an unbindable mount fails,
    so until the switch "/" is a slave (or private, if asked); the requested
    propagation is applied to the new root afterwards (0: nothing to do)."""
    if not name:
        return MS_SLAVE | MS_REC, 0
    from minirun.errors import ConfigError

    if name not in PROPAGATION:
        raise ConfigError(f"invalid rootfsPropagation {name!r}")
    flags = PROPAGATION[name]
    if flags & (MS_PRIVATE | MS_SLAVE):
        return flags, 0
    return MS_SLAVE | MS_REC, flags
