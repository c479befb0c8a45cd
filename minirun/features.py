"""The runtime-spec features document (`minirun features`).

Engines ask a runtime what it implements before they use it: containerd 2.x
runs `<runtime> features` and refuses, for instance, idmapped mounts when the
runtime does not claim them (runtime-spec features.md, features-linux.md).
The shape follows runc's `features` output.  Everything here is what minirun
*recognises*, not what this host supports (the spec says so), except the
seccomp lists, which, as in runc, come from the libseccomp minirun loads.
"""
from minirun import OCI_VERSION, __version__

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]

# The `mounts[].options` names minirun's mount code turns into mount flags
# and propagation changes; anything else is passed to the filesystem as data.
MOUNT_OPTIONS = [
    "async", "atime", "bind", "dev", "diratime", "dirsync", "exec", "lazytime", "mand",
    "noatime", "nodev", "nodiratime", "noexec", "nolazytime", "nomand", "norelatime",
    "nostrictatime", "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount",
    "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
    "strictatime", "suid", "sync", "unbindable",
]

ANNOTATION_VERSION = "minirun.version"
ANNOTATION_LIBSECCOMP_VERSION = "io.github.seccomp.libseccomp.version"  # runc's key


def seccomp_features():
    """The linux.seccomp section: what compile_filter accepts here."""
    from minirun.linux import seccomp

    if not seccomp.available():
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": seccomp.known_actions(),
        "operators": seccomp.known_operators(),
        "archs": seccomp.known_archs(),
        "knownFlags": seccomp.known_flags(),
        "supportedFlags": seccomp.supported_flags(),
    }


def features():
    """The features document as a dict, ready for json.dumps."""
    from minirun.linux import seccomp
    from minirun.linux.caps import CAP_NAMES
    from minirun.spec import NAMESPACE_TYPES

    linux_seccomp = seccomp_features()
    annotations = {ANNOTATION_VERSION: __version__}
    if linux_seccomp["enabled"]:
        annotations[ANNOTATION_LIBSECCOMP_VERSION] = seccomp.library_version()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": list(MOUNT_OPTIONS),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            "capabilities": list(CAP_NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": linux_seccomp,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": annotations,
    }
