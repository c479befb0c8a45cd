"""Docker's seccomp profiles -> the OCI `linux.seccomp` of one container.

`minirun run` confines a container's process with Docker's default policy:
every system call fails with EPERM except about 370 listed ones; those that
need a capability (mount, unshare, setns, bpf, ptrace...) are allowed only if
the container has it, and a few (the kernel keyring: add_key, keyctl,
request_key; kernel modules without CAP_SYS_MODULE; ...) never are.  The
policy is data: seccomp_default.json is moby's profiles/seccomp/default.json
(Apache-2.0, like minirun), unchanged.

A Docker-format profile is the OCI object plus conditions that are resolved
here, for this container on this host (as moby's setupSeccomp does):

  archMap              -> architectures: this machine's and its sub-architectures
  syscalls[].includes  keep the entry only if every condition holds:
                         caps       all in the container's bounding set
                         arches     this machine is one of them ("amd64", "arm64"...)
                         minKernel  this kernel is at least "MAJOR.MINOR"
  syscalls[].excludes  drop the entry if any condition holds (same fields)
  syscalls[].name      -> names (older profiles); comment is dropped

The --security-opt value is kept as Docker's CLI keeps it: "unconfined",
"builtin" (the default, said explicitly) or the profile file's JSON, compacted,
so the container keeps its policy when the file changes and `inspect` shows
it (HostConfig.SecurityOpt).  --privileged runs without a profile unless one
is given as a file (Docker does the same).
"""
import json
import os

from minirun.frontend.options import BadOption

UNCONFINED = "unconfined"
BUILTIN = "builtin"
DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "seccomp_default.json")

# platform.machine() -> (the name the profiles' "arches" use for it, as moby
# derives it from GOARCH; the libseccomp architecture archMap is keyed by).
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "loongarch64": ("loongarch64", "SCMP_ARCH_LOONGARCH64"),
}


class ProfileError(BadOption):
    """A --security-opt seccomp=FILE that cannot be used (exit status 125, as Docker)."""


# --- the option --------------------------------------------------------------------------
def option_value(value):
    """--security-opt seccomp=VALUE -> what the container keeps: "unconfined",
    "builtin" or the profile's compact JSON.  The file is read and checked now,
    before anything of the container exists."""
    if value in (UNCONFINED, BUILTIN):
        return value
    try:
        with open(value, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ProfileError(f"opening seccomp profile ({value}) failed: "
                           f"{e.strerror.lower()}") from None
    try:
        profile = json.loads(data)
    except ValueError as e:
        raise ProfileError(f"decoding seccomp profile ({value}) failed: {e}") from None
    check(profile, f"seccomp profile ({value})")
    return json.dumps(profile, separators=(",", ":"))


def load(value=None):
    """The profile a kept option value stands for (None/"builtin": the default)."""
    if value in (None, BUILTIN):
        with open(DEFAULT_PROFILE) as f:
            return json.load(f)
    if value == UNCONFINED:
        return None
    return json.loads(value)


def for_container(value, bounding, privileged=False):
    """The OCI linux.seccomp for a container (None: no filter)."""
    if value == UNCONFINED or (privileged and value in (None, BUILTIN)):
        return None
    return resolve(load(value), bounding)


# --- checking a profile ------------------------------------------------------------------
def check(profile, what="seccomp profile"):
    """Raise ProfileError naming the first field that a Docker-format profile
    (or a plain OCI linux.seccomp object) gets wrong."""
    from minirun.linux import seccomp

    def fail(where, message):
        raise ProfileError(f"{what}: {where}: {message}")

    def strings(value, where, allowed=None):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail(where, "must be an array of strings")
        for v in value:
            if allowed is not None and v not in allowed:
                fail(where, f"unknown value {v!r}")

    def integer(value, where, limit):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
            fail(where, f"{value!r} is not an integer between 0 and {limit - 1}")

    def action(name, where):
        if name not in seccomp.ACTIONS:
            fail(where, f"unknown action {name!r}")
        if name == "SCMP_ACT_NOTIFY":
            fail(where, "SCMP_ACT_NOTIFY (a seccomp agent) is not supported")

    if not isinstance(profile, dict):
        fail("the profile", "must be a JSON object")
    if profile.get("defaultAction") is not None:
        action(profile["defaultAction"], "defaultAction")
    elif profile.get("syscalls"):
        fail("defaultAction", "is required when syscalls are listed")
    if "defaultErrnoRet" in profile:
        integer(profile["defaultErrnoRet"], "defaultErrnoRet", 1 << 16)
    if profile.get("architectures") and profile.get("archMap"):
        fail("architectures", "both 'architectures' and 'archMap' are given; use one")
    if "architectures" in profile:
        strings(profile["architectures"], "architectures", seccomp.ARCH_NAMES)
    arch_map = profile.get("archMap")
    arch_map = [] if arch_map is None else arch_map
    if not isinstance(arch_map, list):
        fail("archMap", "must be an array")
    for i, entry in enumerate(arch_map):
        if not isinstance(entry, dict) or entry.get("architecture") not in seccomp.ARCH_NAMES:
            fail(f"archMap[{i}]", "needs an architecture such as SCMP_ARCH_X86_64")
        strings(entry.get("subArchitectures") or [], f"archMap[{i}].subArchitectures",
                seccomp.ARCH_NAMES)
    if profile.get("flags") is not None:
        strings(profile["flags"], "flags", seccomp.KNOWN_FLAGS)
    syscalls = profile.get("syscalls")
    syscalls = [] if syscalls is None else syscalls
    if not isinstance(syscalls, list):
        fail("syscalls", "must be an array")
    for i, entry in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            fail(where, "must be an object")
        if entry.get("name") and entry.get("names"):
            fail(where, "both 'name' and 'names' are given; use one")
        names = [entry["name"]] if entry.get("name") else entry.get("names")
        if not names:
            fail(where, "names must list at least one syscall")
        strings(names, where + ".names")
        action(entry.get("action"), where + ".action")
        if entry.get("errnoRet") is not None:
            integer(entry["errnoRet"], where + ".errnoRet", 1 << 16)
        args = [] if entry.get("args") is None else entry["args"]
        if not isinstance(args, list):
            fail(where + ".args", "must be an array")
        for j, arg in enumerate(args):
            at = f"{where}.args[{j}]"
            if not isinstance(arg, dict):
                fail(at, "must be an object")
            integer(arg.get("index"), at + ".index", 6)
            integer(arg.get("value", 0), at + ".value", 1 << 64)
            integer(arg.get("valueTwo", 0), at + ".valueTwo", 1 << 64)
            if arg.get("op") not in seccomp.OPERATORS:
                fail(at + ".op", f"unknown operator {arg.get('op')!r}")
        for key in ("includes", "excludes"):
            cond = entry.get(key)
            if cond is None:
                continue
            if not isinstance(cond, dict):
                fail(f"{where}.{key}", "must be an object")
            strings(cond.get("caps") or [], f"{where}.{key}.caps")
            strings(cond.get("arches") or [], f"{where}.{key}.arches")
            if cond.get("minKernel") not in (None, "") and \
                    _kernel_version(cond["minKernel"]) is None:
                fail(f"{where}.{key}.minKernel",
                     f"{cond['minKernel']!r} is not a version like \"4.8\"")


# --- resolving it for one container ---------------------------------------------------------
def resolve(profile, bounding, machine=None, kernel=None):
    """The OCI object for a container whose bounding set is `bounding`, on a
    machine (platform.machine()) running kernel release `kernel` (os.uname())."""
    if not profile or (not profile.get("defaultAction") and not profile.get("syscalls")):
        return None  # nothing to enforce: Docker runs such a container unconfined
    arch, native = _MACHINES.get(machine or os.uname().machine, ("", ""))  # platform.machine()
    # without importing platform (its regexps cost more than building the profile)
    kernel = _kernel_version(kernel or os.uname().release) or (0, 0)
    caps = set(bounding)
    out = {k: v for k, v in profile.items()
           if k in ("defaultAction", "defaultErrnoRet", "architectures", "flags",
                    "listenerPath", "listenerMetadata")}
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            out["architectures"] = [native, *(entry.get("subArchitectures") or [])]
            break
    rules = []
    for entry in profile.get("syscalls") or []:
        if not _applies(entry, caps, arch, kernel):
            continue
        rule = {"names": [entry["name"]] if entry.get("name") else list(entry["names"]),
                "action": entry["action"]}
        for key in ("errnoRet", "args"):
            if entry.get(key) is not None and entry.get(key) != []:
                rule[key] = entry[key]
        rules.append(rule)
    out["syscalls"] = rules
    return out


def _applies(entry, caps, arch, kernel):
    excludes = entry.get("excludes") or {}
    if arch in (excludes.get("arches") or ()) or caps & set(excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and kernel >= _kernel_version(excludes["minKernel"]):
        return False
    includes = entry.get("includes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not set(includes.get("caps") or ()) <= caps:
        return False
    if includes.get("minKernel") and kernel < _kernel_version(includes["minKernel"]):
        return False
    return True


def _kernel_version(text):
    """"6.1.0-57-amd64" or "4.8" -> (6, 1); None if it does not start like that."""
    parts = str(text).split(".")
    try:
        major = int(parts[0])
        minor = int("".join(c for c in parts[1].split("-")[0] if c.isdigit()) or "x")
    except (ValueError, IndexError):
        return None
    return major, minor
