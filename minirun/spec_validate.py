"""config.json against the runtime-spec's schema, before anything is made.

The rules are the schema's (schema/config-schema.json, config-linux.json,
defs.json and defs-linux.json of opencontainers/runtime-spec), written as
data: the type of every field, the integer ranges (uint32 ids, int64 limits,
uint64 sizes), the enumerations (namespace types, rlimit types, seccomp
actions, architectures, operators and flags, device types, propagation), and
absolute paths where the spec says MUST.  The first violation is a
ConfigError of one line naming the field and the value:

    config.json: linux.resources.memory.limit: "lots" is not an integer
    config.json: process.user.uid: -1 is out of range (0 to 4294967295)

Two deliberate leniencies, as runc (Go) has them: null counts as absent for
optional fields, and fields the schema does not know are ignored (newer spec
versions, other platforms).  Plain Python over the parsed dict: no `re`, no
jsonschema on the path of every `create`.
"""
from minirun.errors import ConfigError

# ------------------------------------------------------------------ rule kinds
# A rule is a tuple: (kind, ...).  Kinds: "int" lo hi, "str", "bool",
# "abs" (absolute path), "enum" values, "arr" item, "map" value,
# "obj" fields required, "weight" (blkio: 0 = unset, else 10..1000), "any".

STR = ("str",)
BOOL = ("bool",)
ABS = ("abs",)
ANY = ("any",)
INT32 = ("int", -2**31, 2**31 - 1)
INT64 = ("int", -2**63, 2**63 - 1)
UINT16 = ("int", 0, 2**16 - 1)
UINT32 = ("int", 0, 2**32 - 1)
UINT64 = ("int", 0, 2**64 - 1)
STRINGS = ("arr", STR)
MAP_STR = ("map", STR)
WEIGHT = ("weight",)


def obj(fields, required=()):
    return ("obj", fields, tuple(required))


def arr(item):
    return ("arr", item)


def enum(*values):
    return ("enum", frozenset(values))


NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
RLIMIT_TYPES = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave",
                "unbindable", "runbindable")

ID_MAPPING = obj({"containerID": UINT32, "hostID": UINT32, "size": UINT32},
                 required=("containerID", "hostID", "size"))
HOOK = obj({"path": ABS, "args": STRINGS, "env": STRINGS, "timeout": ("int", 1, 2**31 - 1)},
           required=("path",))
HOOKS = arr(HOOK)

PROCESS = obj({
    "terminal": BOOL,
    "consoleSize": obj({"height": UINT64, "width": UINT64}, required=("height", "width")),
    "cwd": ABS,
    "env": STRINGS,
    "args": STRINGS,
    "commandLine": STR,
    "user": obj({"uid": UINT32, "gid": UINT32, "umask": UINT32,
                 "additionalGids": arr(UINT32), "username": STR}),
    "capabilities": obj({k: STRINGS for k in ("bounding", "effective", "inheritable",
                                              "permitted", "ambient")}),
    "rlimits": arr(obj({"type": enum(*RLIMIT_TYPES), "soft": UINT64, "hard": UINT64},
                       required=("type", "soft", "hard"))),
    "noNewPrivileges": BOOL,
    "apparmorProfile": STR,
    "oomScoreAdj": ("int", -1000, 1000),
    "selinuxLabel": STR,
    "ioPriority": obj({"class": enum("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE",
                                     "IOPRIO_CLASS_IDLE"), "priority": INT32},
                      required=("class",)),
    "scheduler": obj({
        "policy": enum("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO",
                       "SCHED_IDLE", "SCHED_DEADLINE"),
        "nice": INT32, "priority": INT32,
        "flags": arr(enum("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM",
                          "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_KEEP_POLICY",
                          "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
                          "SCHED_FLAG_UTIL_CLAMP_MAX")),
        "runtime": UINT64, "deadline": UINT64, "period": UINT64}, required=("policy",)),
    "execCPUAffinity": obj({"initial": STR, "final": STR}),
})

BLOCK_DEVICE = {"major": INT64, "minor": INT64}
THROTTLE = arr(obj(dict(BLOCK_DEVICE, rate=UINT64), required=("major", "minor")))

RESOURCES = obj({
    "devices": arr(obj({"allow": BOOL, "type": enum("a", "b", "c"), "major": INT64,
                        "minor": INT64, "access": ("access",)})),
    "memory": obj({"limit": INT64, "reservation": INT64, "swap": INT64, "kernel": INT64,
                   "kernelTCP": INT64, "swappiness": ("int", 0, 100),
                   "disableOOMKiller": BOOL, "useHierarchy": BOOL, "checkBeforeUpdate": BOOL}),
    "cpu": obj({"shares": UINT64, "quota": INT64, "burst": UINT64, "period": UINT64,
                "realtimeRuntime": INT64, "realtimePeriod": UINT64, "cpus": STR, "mems": STR,
                "idle": INT64}),
    "pids": obj({"limit": INT64}),
    "blockIO": obj({
        "weight": WEIGHT, "leafWeight": WEIGHT,
        "weightDevice": arr(obj(dict(BLOCK_DEVICE, weight=WEIGHT, leafWeight=WEIGHT),
                                required=("major", "minor"))),
        "throttleReadBpsDevice": THROTTLE, "throttleWriteBpsDevice": THROTTLE,
        "throttleReadIOPSDevice": THROTTLE, "throttleWriteIOPSDevice": THROTTLE}),
    "hugepageLimits": arr(obj({"pageSize": STR, "limit": UINT64},
                              required=("pageSize", "limit"))),
    "network": obj({"classID": UINT32,
                    "priorities": arr(obj({"name": STR, "priority": UINT32},
                                          required=("name", "priority")))}),
    "rdma": ("map", obj({"hcaHandles": UINT32, "hcaObjects": UINT32})),
    "unified": MAP_STR,
})

LINUX = obj({
    "devices": arr(obj({"type": enum("c", "b", "u", "p"), "path": ABS, "major": INT64,
                        "minor": INT64, "fileMode": UINT32, "uid": UINT32, "gid": UINT32},
                       required=("type", "path"))),
    "uidMappings": arr(ID_MAPPING),
    "gidMappings": arr(ID_MAPPING),
    "namespaces": arr(obj({"type": enum(*NAMESPACE_TYPES), "path": ABS}, required=("type",))),
    "resources": RESOURCES,
    "cgroupsPath": STR,
    "rootfsPropagation": enum(*PROPAGATIONS),
    "seccomp": ("seccomp",),  # its enumerations live in minirun/linux/seccomp.py
    "sysctl": MAP_STR,
    "maskedPaths": arr(ABS),
    "readonlyPaths": arr(ABS),
    "mountLabel": STR,
    "intelRdt": obj({"closID": STR, "l3CacheSchema": STR, "memBwSchema": STR}),
    "personality": obj({"domain": enum("LINUX", "LINUX32"), "flags": STRINGS},
                       required=("domain",)),
    "timeOffsets": ("map", obj({"secs": INT64, "nanosecs": UINT32})),
})

CONFIG = obj({
    "ociVersion": STR,
    "root": obj({"path": STR, "readonly": BOOL}, required=("path",)),
    "mounts": arr(obj({"destination": STR, "source": STR, "type": STR,
                       "options": arr(("option",)), "uidMappings": arr(ID_MAPPING),
                       "gidMappings": arr(ID_MAPPING)}, required=("destination",))),
    "process": PROCESS,
    "hostname": STR,
    "domainname": STR,
    "hooks": obj({k: HOOKS for k in ("prestart", "createRuntime", "createContainer",
                                     "startContainer", "poststart", "poststop")}),
    "annotations": MAP_STR,
    "linux": LINUX,
}, required=("ociVersion", "root"))


# ------------------------------------------------------------------ checking

class _Invalid(Exception):
    """A violation; `where` collects the path from the leaf up while the
    error unwinds (no path strings are built when everything is valid)."""

    def __init__(self, problem):
        super().__init__(problem)
        self.problem = problem
        self.where = []  # innermost first: "limit", "memory", "resources", "linux"

    def path(self):
        out = ""
        for step in reversed(self.where):
            if isinstance(step, int):
                out += f"[{step}]"
            elif step and all(c > " " and c not in '.[]"\\' for c in step):
                out += f".{step}" if out else step
            else:  # a map key such as an annotation's: quoted, as JSON writes it
                out += f"[{_show(step)}]"
        return out


def _show(value):
    """A value as it was written in the JSON, shortened for one line."""
    if value is None:
        text = "null"
    elif value is True or value is False:
        text = "true" if value else "false"
    elif isinstance(value, str):
        # As JSON writes it: quotes, backslashes and control characters escaped.
        text = '"' + "".join(c if c >= " " and c not in '"\\' else
                             "\\" + c if c in '"\\' else f"\\u{ord(c):04x}"
                             for c in value) + '"'
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "an array"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value, rule):
    kind = rule[0]
    if kind == "obj":
        if type(value) is not dict:
            raise _Invalid(f"{_show(value)} is not an object")
        fields = rule[1]
        for name in rule[2]:
            if value.get(name) is None:
                err = _Invalid("is required")
                err.where.append(name)
                raise err
        for name, item in value.items():
            sub = fields.get(name)
            if sub is not None and item is not None:
                try:
                    _check(item, sub)
                except _Invalid as err:
                    err.where.append(name)
                    raise
    elif kind == "int":
        # Not bool (an int subclass) and not 5.0 or 1e3 either: runc's Go
        # decoder refuses those for an integer field, and "5.0" would reach
        # a cgroup file as such.
        if type(value) is not int:
            raise _Invalid(f"{_show(value)} is not an integer")
        if not rule[1] <= value <= rule[2]:
            raise _Invalid(f"{_show(value)} is out of range ({rule[1]} to {rule[2]})")
    elif kind == "str":
        if type(value) is not str:
            raise _Invalid(f"{_show(value)} is not a string")
    elif kind == "arr":
        if type(value) is not list:
            raise _Invalid(f"{_show(value)} is not an array")
        item_rule = rule[1]
        for i, item in enumerate(value):
            try:
                _check(item, item_rule)
            except _Invalid as err:
                err.where.append(i)
                raise
    elif kind == "bool":
        if value is not True and value is not False:
            raise _Invalid(f"{_show(value)} is not true or false")
    elif kind == "abs":
        if type(value) is not str:
            raise _Invalid(f"{_show(value)} is not a string")
        if not value.startswith("/"):
            raise _Invalid(f"{_show(value)} is not an absolute path")
    elif kind == "enum":
        if type(value) is not str or value not in rule[1]:
            raise _Invalid(f"{_show(value)} is not one of {', '.join(sorted(rule[1]))}")
    elif kind == "map":
        if type(value) is not dict:
            raise _Invalid(f"{_show(value)} is not an object")
        for key, item in value.items():
            if not key:
                raise _Invalid("has an empty key")
            try:
                _check(item, rule[1])
            except _Invalid as err:
                err.where.append(key)
                raise
    elif kind == "weight":
        _check(value, UINT16)
        if value and not 10 <= value <= 1000:
            raise _Invalid(f"{_show(value)} is out of range (10 to 1000, or 0 for unset)")
    elif kind == "access":
        if type(value) is not str or not set(value) <= set("rwm"):
            raise _Invalid(f"{_show(value)} is not made of the letters r, w and m")
    elif kind == "option":
        if type(value) is not str:
            raise _Invalid(f"{_show(value)} is not a string")
        if "," in value or "\0" in value or not value:
            # One option per entry: a comma would pass several to mount(2) unseen.
            raise _Invalid(f"{_show(value)} is not a single mount option")
    elif kind == "seccomp":
        _check(value, _seccomp_rule())
    elif kind != "any":  # pragma: no cover - a typo in the tables above
        raise AssertionError(f"unknown rule kind {kind!r}")


def _seccomp_rule():
    from minirun.linux import seccomp

    action = enum(*seccomp.ACTIONS)
    return obj({
        "defaultAction": action,
        "defaultErrnoRet": UINT32,
        "architectures": arr(enum(*seccomp.ARCH_NAMES)),
        "flags": arr(enum(*seccomp.KNOWN_FLAGS)),
        "listenerPath": STR,
        "listenerMetadata": STR,
        "syscalls": arr(obj({
            "names": STRINGS, "action": action, "errnoRet": UINT32,
            "args": arr(obj({"index": UINT32, "value": UINT64, "valueTwo": UINT64,
                             "op": enum(*seccomp.OPERATORS)},
                            required=("index", "value", "op")))},
            required=("names", "action"))),
    }, required=("defaultAction",))


def check(value, rule=CONFIG, where="config.json"):
    """Raise ConfigError naming the first field of `value` that breaks `rule`."""
    try:
        _check(value, rule)
    except _Invalid as e:
        path = e.path()
        if e.problem == "is required":
            raise ConfigError(f"{where}: {path} is required") from None
        if path:
            raise ConfigError(f"{where}: {path}: {e.problem}") from None
        raise ConfigError(f"{where}: {e.problem}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


def check_config(config):
    check(config, CONFIG)


def check_process(process, where="process"):
    check(process, PROCESS, where)


def check_resources(resources, where="resources"):
    check(resources, RESOURCES, where)
