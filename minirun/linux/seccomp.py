"""Seccomp: compile the OCI `linux.seccomp` object into a BPF program.

The kernel runs a seccomp filter, a small classic-BPF program, on every
system call of the filtered process; its return value says allow, fail with
an errno, kill, trap, and so on (seccomp(2)).  Writing that program by hand
is error-prone (architectures, x32, 64-bit argument comparisons), so minirun
does what runc and crun do: it describes the rules to libseccomp and asks it
for the program.  libseccomp is reached through cffi in ABI mode (dlopen of
libseccomp.so.2, no compiler needed), and only when a config has seccomp.

minirun does not load the filter itself: the program is written to a memfd
and the static exec helper (c_ext/exec_helper.c) loads it right before the
final execve, so the filter restricts only the user's program, not minirun.

    bpf, flags = compile_filter(config["linux"]["seccomp"])
    fd, flags = write_filter_fd(config["linux"]["seccomp"])   # for the helper
    fd, flags = write_filter_fd(seccomp, cache_dir)   # compiled once per profile

Semantics follow runc (libcontainer/seccomp, specconv.SetupSeccomp):
  * syscall names this libseccomp does not know are skipped (the profile may
    name syscalls of newer kernels); unknown actions, operators,
    architectures and flags are errors;
  * `flags` absent means SECCOMP_FILTER_FLAG_SPEC_ALLOW (do not force the
    Spectre store-bypass mitigation on the container), `flags: []` means none;
  * a rule whose action equals the default action is dropped (libseccomp
    refuses it); two conditions on the same argument become separate rules
    (libseccomp cannot AND them);
  * when the default action refuses syscalls, syscalls newer than every one
    the profile names get ENOSYS instead of the default errno, so that libc
    falls back to older syscalls (runc's patchbpf "ENOSYS stub").
SCMP_ACT_NOTIFY (a user-space seccomp agent on listenerPath) is not
supported and is rejected with a clear error.
"""
import errno
import os
import struct

from minirun.errors import ConfigError, MinirunError
from minirun.linux import trace
from minirun.linux.trace import step

# Action values (seccomp.h SCMP_ACT_*; the kernel's SECCOMP_RET_*).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000  # | errno
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000  # | message for the tracer
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,  # libseccomp's historic name for KILL_THREAD
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
# Actions that carry a 16-bit value: the errno to return, or the tracer's message.
ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
# Actions that let unknown syscalls through: no ENOSYS stub for them (runc: a
# tracer is expected to handle future syscalls itself).
_ALLOWING = (ACT_ALLOW, ACT_LOG, ACT_TRACE)
# Oldest libseccomp API level (seccomp_api_get) that supports each action.
_ACTION_API = {"SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3}

# Comparison operators (enum scmp_compare).
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,  # (arg & value) == valueTwo
}

# seccomp(2) SECCOMP_FILTER_FLAG_* bits, with the libseccomp API level that
# tells the kernel supports them (2: TSYNC, 3: LOG, 4: SPEC_ALLOW).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (1, 2),
    "SECCOMP_FILTER_FLAG_LOG": (2, 3),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 4),
}
# In the runtime-spec but only meaningful with a notify listener, which
# minirun does not have: recognised, never supported.
FLAG_WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
KNOWN_FLAGS = tuple(FLAGS) + (FLAG_WAIT_KILLABLE_RECV,)

# Architecture names the runtime-spec and libseccomp use; which of them this
# libseccomp actually knows is asked at run time (known_archs()).
ARCH_NAMES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

_SYSCALL_MAX_ARGS = 6
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: "no such syscall"
# Filter attributes (enum scmp_filter_attr).
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8
# libseccomp <= 2.5.4 misbehaves with the binary tree and no rules; like runc,
# only ask for it on long rule lists, where the linear search costs.
_BINARY_TREE_MIN_RULES = 32

_libseccomp = None  # (ffi, lib) once loaded


def _load():
    """dlopen libseccomp on first use (cffi and the library cost start-up time)."""
    global _libseccomp
    if _libseccomp is None:
        try:
            from minirun._libseccomp import ffi  # pre-parsed at build time
        except ImportError:
            import cffi

            from minirun.linux.libseccomp_cdef import CDEF

            ffi = cffi.FFI()
            ffi.cdef(CDEF)
        try:
            lib = ffi.dlopen("libseccomp.so.2")
        except OSError as e:
            raise MinirunError(f"seccomp is not available: cannot load libseccomp.so.2 ({e}); "
                               "install libseccomp2") from None
        _libseccomp = (ffi, lib)
    return _libseccomp


def available():
    try:
        _load()
    except MinirunError:
        return False
    return True


def library_version():
    """libseccomp's version as "major.minor.micro"."""
    _, lib = _load()
    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def api_level():
    """libseccomp's API level, which reflects what the running kernel supports."""
    _, lib = _load()
    return lib.seccomp_api_get()


def known_actions():
    """Actions compile_filter accepts with this libseccomp and kernel."""
    level = api_level()
    return sorted(name for name in ACTIONS
                  if name != "SCMP_ACT_NOTIFY" and level >= _ACTION_API.get(name, 0))


def known_operators():
    return sorted(OPERATORS)


def known_archs():
    """Architecture names this libseccomp can build filters for."""
    _, lib = _load()
    return sorted(name for name in ARCH_NAMES
                  if lib.seccomp_arch_resolve_name(_lib_arch_name(name)))


def known_flags():
    return list(KNOWN_FLAGS)


def supported_flags():
    """The known flags this libseccomp and kernel can apply."""
    level = api_level()
    return [name for name, (_, needs) in FLAGS.items() if level >= needs]


def _lib_arch_name(spec_name):
    # SCMP_ARCH_X86_64 -> "x86_64", the name seccomp_arch_resolve_name takes.
    return spec_name[len("SCMP_ARCH_"):].lower().encode()


def _where_int(value, where, limit):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise ConfigError(f"{where}: {value!r} is not an integer between 0 and {limit - 1}")
    return value


def _action(name, errno_ret, where):
    """Spec action name (+ errnoRet) -> the 32-bit action value libseccomp takes."""
    if not isinstance(name, str) or name not in ACTIONS:
        raise ConfigError(f"{where}: string {name} is not a valid action for seccomp")
    if name == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{where}: SCMP_ACT_NOTIFY (a seccomp agent on listenerPath) "
                          "is not supported by minirun")
    if name in ACTIONS_WITH_ERRNO:
        ret = errno.EPERM if errno_ret is None else _where_int(errno_ret, where + " errnoRet",
                                                                 1 << 16)
    elif errno_ret is not None:
        raise ConfigError(f"{where}: errnoRet is only valid with SCMP_ACT_ERRNO or "
                          f"SCMP_ACT_TRACE, not {name}")
    else:
        ret = 0
    if api_level() < _ACTION_API.get(name, 0):
        raise ConfigError(f"{where}: {name} is not supported by this kernel or "
                          f"libseccomp {library_version()}")
    return ACTIONS[name] | ret


def _flags(names):
    """Spec flags -> the seccomp(2) flags integer; absent means SPEC_ALLOW, as in runc."""
    level = api_level()
    if names is None:
        value, needs = FLAGS["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        return value if level >= needs else 0
    if not isinstance(names, list):
        raise ConfigError("linux.seccomp.flags must be an array of strings")
    out = 0
    for name in names:
        if name == FLAG_WAIT_KILLABLE_RECV:
            raise ConfigError(f"seccomp flag {name} is not supported by minirun "
                              "(it only applies to SCMP_ACT_NOTIFY listeners)")
        if not isinstance(name, str) or name not in FLAGS:
            raise ConfigError(f"seccomp flag {name} is not known to minirun")
        value, needs = FLAGS[name]
        if level < needs:
            raise ConfigError(f"seccomp flag {name} is not supported by this kernel "
                              f"or libseccomp {library_version()}")
        out |= value
    return out


def _parse_rules(syscalls):
    """Validate syscalls[] -> [(where, names, action, [(index, op, a, b)])]."""
    if syscalls is None:
        return []
    if not isinstance(syscalls, list):
        raise ConfigError("linux.seccomp.syscalls must be an array")
    rules = []
    for i, entry in enumerate(syscalls):
        where = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object")
        names = entry.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{where}.names must list at least one syscall")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}.names: {name!r} is not a valid syscall name")
        conditions = []
        for j, arg in enumerate(entry.get("args") or []):
            at = f"{where}.args[{j}]"
            if not isinstance(arg, dict):
                raise ConfigError(f"{at} must be an object")
            op = arg.get("op")
            if not isinstance(op, str) or op not in OPERATORS:
                raise ConfigError(f"{at}: string {op} is not a valid operator for seccomp")
            index = _where_int(arg.get("index"), at + ".index", _SYSCALL_MAX_ARGS)
            value = _where_int(arg.get("value"), at + ".value", 1 << 64)
            value_two = _where_int(arg.get("valueTwo", 0), at + ".valueTwo", 1 << 64)
            conditions.append((index, OPERATORS[op], value, value_two))
        action = _action(entry.get("action"), entry.get("errnoRet"), where + ".action")
        rules.append((where, names, action, conditions))
    return rules


def compile_filter(seccomp):
    """Compile an OCI linux.seccomp object to (BPF program bytes, seccomp(2) flags).

    The bytes are a `struct sock_filter[]` in host byte order, ready for
    seccomp(SECCOMP_SET_MODE_FILTER, flags, {len, filter}).  Returns (None, 0)
    when there is nothing to load (no seccomp object, or neither a default
    action nor syscalls, which runc also treats as "seccomp disabled").
    Raises ConfigError for anything malformed or unsupported.
    """
    if not seccomp:
        return None, 0
    if not isinstance(seccomp, dict):
        raise ConfigError("linux.seccomp must be an object")
    default_name = seccomp.get("defaultAction")
    if not default_name and not seccomp.get("syscalls"):
        return None, 0
    if not default_name:
        raise ConfigError("linux.seccomp.defaultAction is required")

    # Everything is validated before libseccomp builds anything.
    default = _action(default_name, seccomp.get("defaultErrnoRet"), "linux.seccomp.defaultAction")
    rules = _parse_rules(seccomp.get("syscalls"))
    flags = _flags(seccomp.get("flags"))
    archs = seccomp.get("architectures") or []
    if not isinstance(archs, list):
        raise ConfigError("linux.seccomp.architectures must be an array of strings")
    ffi, lib = _load()
    tokens = []
    for arch in archs:
        token = lib.seccomp_arch_resolve_name(_lib_arch_name(arch)) if (
            isinstance(arch, str) and arch.startswith("SCMP_ARCH_")) else 0
        if not token:
            raise ConfigError(f"string {arch} is not a valid arch for seccomp")
        tokens.append(token)

    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise MinirunError("seccomp_init failed: libseccomp could not create a filter")
    try:
        native = lib.seccomp_arch_native()
        filter_archs = [native]
        for arch, token in zip(archs, tokens):
            rc = lib.seccomp_arch_add(ctx, token)
            if rc == -errno.EEXIST:
                continue
            if rc < 0:
                raise ConfigError(f"cannot add architecture {arch} to the seccomp filter: "
                                  f"{os.strerror(-rc)}")
            filter_archs.append(token)
        # no_new_privs is the runtime's business (process.noNewPrivileges); the
        # helper loads the program, so this only keeps libseccomp from assuming.
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)

        if sum(len(names) for _, names, _, _ in rules) > _BINARY_TREE_MIN_RULES:
            # A binary search over syscall numbers instead of a linear one; best
            # effort, as in runc (older libseccomp refuses it).
            lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
        added = skipped = 0
        for where, names, action, conditions in rules:
            if action == default:
                continue  # redundant, and libseccomp refuses it (EACCES)
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    skipped += 1
                    step("seccomp", f"unknown syscall {name!r} ignored",
                         "the profile may name syscalls this libseccomp does not know")
                    continue
                _add_rule(ffi, lib, ctx, action, nr, conditions, f"{where} ({name})")
                added += 1
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)

    if (default & 0xFFFF0000) not in _ALLOWING:
        all_names = [n for _, names, _, _ in rules for n in names]
        program = _enosys_stub(lib, filter_archs, all_names) + program
    step("seccomp", f"compiled default={default_name} rules={added} skipped={skipped} "
         f"insns={len(program) // 8} flags={flags:#x}",
         "the kernel will run this BPF program on every syscall of the container process",
         "seccomp(2)")
    return program, flags


def _add_rule(ffi, lib, ctx, action, nr, conditions, where):
    indexes = [c[0] for c in conditions]
    if len(set(indexes)) != len(indexes):
        # libseccomp cannot AND two comparisons of one argument; runc (and so
        # existing profiles) then treat each condition as its own rule.
        groups = [[c] for c in conditions]
    else:
        groups = [conditions]
    for group in groups:
        array = ffi.new("struct scmp_arg_cmp[]", group) if group else ffi.NULL
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
        if rc < 0:
            raise ConfigError(f"{where}: cannot add seccomp rule: {os.strerror(-rc)}")


def _export(lib, ctx):
    fd = os.memfd_create("minirun-seccomp-export", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise MinirunError(f"seccomp_export_bpf: {os.strerror(-rc)}")
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if len(data) != size or size % 8:
        raise MinirunError(f"seccomp_export_bpf wrote {size} bytes, not a whole BPF program")
    return data


# ---- the ENOSYS stub -------------------------------------------------------
# A filter written in 2019 returns its default errno (usually EPERM) for
# clone3 or openat2, and glibc only falls back to clone/openat on ENOSYS.  So,
# like runc's patchbpf, minirun prepends a few instructions: for each
# architecture, a syscall number above the largest one the profile names
# returns ENOSYS, as an old kernel would.  Each section reloads what it reads,
# and libseccomp's program starts by loading the architecture itself, so
# falling through to it is always safe.
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGT_K = 0x25
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_DATA_NR, _DATA_ARCH = 0, 4  # offsets in struct seccomp_data
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's token; the kernel says x86_64 + bit 30
_X32_SYSCALL_BIT = 0x40000000
_S390_ARCHS = (0x16, 0x80000016)  # multiplex unknown syscalls through nr 0: skip


def _insn(code, k, jt=0, jf=0):
    return struct.pack("=HBBI", code, jt, jf, k)


def _enosys_stub(lib, arch_tokens, names):
    last = {}
    for token in dict.fromkeys(arch_tokens):
        if token in _S390_ARCHS:
            continue
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names]
        numbers = [n for n in numbers if n >= 0]  # negative: pseudo number, not on this arch
        if numbers:
            last[token] = max(numbers)
    enosys = _insn(_BPF_RET_K, ACT_ERRNO | errno.ENOSYS)
    stub = []
    x86_64, x32 = last.pop(_AUDIT_ARCH_X86_64, None), last.pop(_SCMP_ARCH_X32, None)
    if x86_64 is not None or x32 is not None:
        if x86_64 is not None and x32 is not None:
            body = [_insn(_BPF_JSET_K, _X32_SYSCALL_BIT, 1, 0),
                    _insn(_BPF_JGT_K, x86_64, 1, 2),
                    _insn(_BPF_JGT_K, x32, 0, 1)]
        elif x86_64 is not None:  # an x32 call: leave it to libseccomp's program
            body = [_insn(_BPF_JSET_K, _X32_SYSCALL_BIT, 2, 0), _insn(_BPF_JGT_K, x86_64, 0, 1)]
        else:
            body = [_insn(_BPF_JSET_K, _X32_SYSCALL_BIT, 0, 2), _insn(_BPF_JGT_K, x32, 0, 1)]
        stub += _section(_AUDIT_ARCH_X86_64, body, enosys)
    for token, nr in last.items():
        stub += _section(token, [_insn(_BPF_JGT_K, nr, 0, 1)], enosys)
    return b"".join(stub)


def _section(audit_arch, body, enosys):
    # ld arch; jne -> next section; ld nr; <body jumps to ret on "too new">; ret ENOSYS
    rest = [_insn(_BPF_LD_W_ABS, _DATA_NR)] + body + [enosys]
    return [_insn(_BPF_LD_W_ABS, _DATA_ARCH), _insn(_BPF_JEQ_K, audit_arch, 0, len(rest))] + rest


def write_filter_fd(seccomp, cache_dir=None):
    """Compile and put the program in a sealed memfd for the exec helper.

    Returns (fd, flags), or (-1, 0) when there is nothing to load: exactly the
    SECCOMP_FD and SECCOMP_FLAGS arguments of minirun-exec.  The fd is
    close-on-exec like every fd Python makes; the caller makes it inheritable
    (os.set_inheritable, or pass_fds) for the exec of the helper, which closes
    it after reading.  Sealed, so nothing in the container can change the
    program between now and the load.

    The kernel loads a filter only for a thread that has no_new_privs set or
    CAP_SYS_ADMIN in its user namespace (seccomp(2), EACCES otherwise): a
    container without process.noNewPrivileges whose capabilities lack
    CAP_SYS_ADMIN cannot load it from the helper (runc loads the filter
    earlier in that case, while it still holds the capability).
    """
    if cache_dir and not trace.enabled():  # a trace shows libseccomp at work, every time
        from minirun.linux.seccomp_cache import cached_compile

        program, flags = cached_compile(seccomp, cache_dir)
    else:
        program, flags = compile_filter(seccomp)
    if program is None:
        return -1, 0
    fd = os.memfd_create("minirun-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view):]
        import fcntl

        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    step("memfd_create", f"minirun-seccomp fd={fd} {len(program)} bytes sealed",
         "the exec helper loads the filter from this fd right before execve", "memfd_create(2)")
    return fd, flags
