"""compile_filter / write_filter_fd: validation and program shape (no filter is loaded here)."""
import errno
import fcntl
import os
import struct
import subprocess
import sys

import pytest

from minirun.errors import ConfigError
from minirun.linux import seccomp
from seccomp_profiles import DOCKER_SHAPED

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

BLOCK_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def insns(program):
    return [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]


def returns(program):
    """The constants the program can return (BPF_RET|BPF_K instructions)."""
    return {k for code, _, _, k in insns(program) if code == 0x06}


def with_(base, **changes):
    profile = dict(base)
    profile.update(changes)
    return profile


def test_nothing_to_load():
    assert seccomp.compile_filter(None) == (None, 0)
    assert seccomp.compile_filter({}) == (None, 0)
    assert seccomp.write_filter_fd(None) == (-1, 0)


def test_minimal_profile_is_a_program():
    program, flags = seccomp.compile_filter(BLOCK_MKDIR)
    assert program and len(program) % 8 == 0
    assert seccomp.ACT_ERRNO | errno.EPERM in returns(program)
    assert seccomp.ACT_ALLOW in returns(program)
    # runc's default when `flags` is absent: SPEC_ALLOW.
    assert flags == 4


def test_errno_ret_is_in_the_program():
    program, _ = seccomp.compile_filter(with_(BLOCK_MKDIR, syscalls=[
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC}]))
    assert seccomp.ACT_ERRNO | errno.ENOSPC in returns(program)
    assert seccomp.ACT_ERRNO | errno.EPERM not in returns(program)


def test_errno_defaults_to_eperm():
    program, _ = seccomp.compile_filter(with_(BLOCK_MKDIR, syscalls=[
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert seccomp.ACT_ERRNO | errno.EPERM in returns(program)


@pytest.mark.parametrize("names,expected", [
    ([], 0),
    (["SECCOMP_FILTER_FLAG_LOG"], 2),
    (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], 4),
    (["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"], 7),
])
def test_flags(names, expected):
    assert seccomp.compile_filter(with_(BLOCK_MKDIR, flags=names))[1] == expected


def test_unknown_syscall_names_are_skipped():
    known, _ = seccomp.compile_filter(BLOCK_MKDIR)
    with_unknown, _ = seccomp.compile_filter(with_(BLOCK_MKDIR, syscalls=[
        {"names": ["mkdir", "no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO",
         "errnoRet": 1}]))
    assert with_unknown == known


def test_rule_equal_to_default_is_dropped():
    allow_all, _ = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW"})
    redundant, _ = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]})
    assert redundant == allow_all


@pytest.mark.parametrize("profile,message", [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "SCMP_ACT_BOGUS is not a valid action"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]),
     "syscalls[0].action: string SCMP_ACT_NOPE is not a valid action"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["mkdir"]}]), "not a valid action"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
     "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
     "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "errnoRet is only valid"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_KILL",
                                   "errnoRet": 1}]), "errnoRet is only valid"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": 70000}]), "errnoRet"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}]),
     "at least one syscall"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 1, "value": 15, "op": "SCMP_CMP_ALMOST"}]}]),
     "SCMP_CMP_ALMOST is not a valid operator"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 6, "value": 15, "op": "SCMP_CMP_EQ"}]}]), "index"),
    (with_(BLOCK_MKDIR, syscalls=[{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 1, "value": -1, "op": "SCMP_CMP_EQ"}]}]), "value"),
    (with_(BLOCK_MKDIR, architectures=["SCMP_ARCH_VAX"]), "SCMP_ARCH_VAX is not a valid arch"),
    (with_(BLOCK_MKDIR, flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "not known to minirun"),
    (with_(BLOCK_MKDIR, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), "not supported"),
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
     "defaultAction is required"),
])
def test_rejected(profile, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        seccomp.compile_filter(profile)
    # and nothing half-made is returned by the fd variant either
    with pytest.raises(ConfigError):
        seccomp.write_filter_fd(profile)


def test_listener_path_without_notify_is_ignored():
    # runtime-spec: "If the SCMP_ACT_NOTIFY action is not used this value is ignored."
    plain, _ = seccomp.compile_filter(BLOCK_MKDIR)
    with_listener, _ = seccomp.compile_filter(with_(BLOCK_MKDIR, listenerPath="/run/a.sock",
                                                    listenerMetadata="x"))
    assert with_listener == plain


def test_enosys_stub_for_deny_by_default_profiles():
    program, _ = seccomp.compile_filter(DOCKER_SHAPED)
    enosys = seccomp.ACT_ERRNO | errno.ENOSYS
    code = insns(program)
    # The stub comes first: load arch, compare with x86_64, and return ENOSYS
    # for syscall numbers above the largest one the profile names.
    assert code[0] == (0x20, 0, 0, 4)
    assert code[1][0] == 0x15 and code[1][3] == 0xC000003E
    assert enosys in returns(program)
    # No stub when unknown syscalls are allowed anyway.
    allow, _ = seccomp.compile_filter(BLOCK_MKDIR)
    assert enosys not in returns(allow)


def test_docker_shaped_profile_compiles():
    program, flags = seccomp.compile_filter(DOCKER_SHAPED)
    assert len(program) // 8 < 4096  # BPF_MAXINSNS
    assert seccomp.ACT_ERRNO | errno.EPERM in returns(program)
    assert flags == 4


def test_filter_fd_is_sealed_cloexec_copy():
    program, flags = seccomp.compile_filter(BLOCK_MKDIR)
    fd, fd_flags = seccomp.write_filter_fd(BLOCK_MKDIR)
    try:
        assert fd_flags == flags
        assert os.pread(fd, len(program) + 8, 0) == program
        assert not os.get_inheritable(fd)
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.write(fd, b"x" * 8)
    finally:
        os.close(fd)


def test_libseccomp_is_loaded_lazily():
    code = ("import sys, minirun.linux.seccomp as s\n"
            "assert not {'cffi', '_cffi_backend', 'minirun._libseccomp'} & set(sys.modules)\n"
            "s.compile_filter({'defaultAction': 'SCMP_ACT_ALLOW'})\n"
            "assert '_cffi_backend' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_runtime_cdef_fallback_gives_the_same_program():
    # Without the build-time module (minirun._libseccomp) the cdef is parsed at run time.
    code = ("import sys; sys.modules['minirun._libseccomp'] = None\n"
            "import minirun.linux.seccomp as s, seccomp_profiles as p\n"
            "sys.stdout.buffer.write(s.compile_filter(p.DOCKER_SHAPED)[0])\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         cwd=os.path.dirname(__file__)).stdout
    assert out == seccomp.compile_filter(DOCKER_SHAPED)[0]


# ---- what the program returns, for architectures this host cannot run -----

def run_bpf(program, arch, nr, args=(0,) * 6):
    """A small classic-BPF interpreter, enough for libseccomp's output and the stub."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)  # struct seccomp_data
    code = insns(program)
    acc = pc = 0
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif op == 0x54:  # and #k
            acc &= k
        elif op == 0x05:  # ja
            pc += k
        elif op in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += jt if taken else jf
        elif op == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"opcode {op:#x} not in the test interpreter")


AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64 = 0x40000003, 0xC000003E, 0xC00000B7
X32 = 0x40000000


@pytest.mark.parametrize("arch,nr,expected", [
    (AUDIT_ARCH_X86_64, 0, seccomp.ACT_ALLOW),                    # read
    (AUDIT_ARCH_X86_64, 103, seccomp.ACT_ERRNO | errno.EPERM),    # syslog: not listed
    (AUDIT_ARCH_X86_64, 435, seccomp.ACT_ERRNO | errno.ENOSYS),   # clone3: its own rule
    (AUDIT_ARCH_X86_64, 1000, seccomp.ACT_ERRNO | errno.ENOSYS),  # newer than the profile
    (AUDIT_ARCH_X86_64, X32 + 0, seccomp.ACT_ALLOW),              # x32 read
    (AUDIT_ARCH_X86_64, X32 + 103, seccomp.ACT_ERRNO | errno.EPERM),
    (AUDIT_ARCH_X86_64, X32 + 1000, seccomp.ACT_ERRNO | errno.ENOSYS),
    (AUDIT_ARCH_I386, 3, seccomp.ACT_ALLOW),                      # i386 read
    (AUDIT_ARCH_I386, 102, seccomp.ACT_ALLOW),                    # i386 socketcall
    (AUDIT_ARCH_I386, 103, seccomp.ACT_ERRNO | errno.EPERM),      # i386 syslog
    (AUDIT_ARCH_I386, 2000, seccomp.ACT_ERRNO | errno.ENOSYS),
    (AUDIT_ARCH_AARCH64, 63, seccomp.ACT_KILL_THREAD),            # not in the filter: killed
])
def test_docker_shaped_program_per_architecture(arch, nr, expected):
    program, _ = seccomp.compile_filter(DOCKER_SHAPED)
    assert run_bpf(program, arch, nr) == expected


def test_argument_comparisons_in_the_program():
    program, _ = seccomp.compile_filter(DOCKER_SHAPED)
    personality = 135
    assert run_bpf(program, AUDIT_ARCH_X86_64, personality, (8, 0, 0, 0, 0, 0)) == \
        seccomp.ACT_ALLOW
    assert run_bpf(program, AUDIT_ARCH_X86_64, personality, (0xFFFFFFFF,) + (0,) * 5) == \
        seccomp.ACT_ALLOW
    assert run_bpf(program, AUDIT_ARCH_X86_64, personality, (0x0040000,) + (0,) * 5) == \
        seccomp.ACT_ERRNO | errno.EPERM
    clone, clone_newns = 56, 0x00020000
    assert run_bpf(program, AUDIT_ARCH_X86_64, clone, (0x1200011,) + (0,) * 5) == \
        seccomp.ACT_ALLOW
    assert run_bpf(program, AUDIT_ARCH_X86_64, clone, (0x1200011 | clone_newns,) + (0,) * 5) == \
        seccomp.ACT_ERRNO | errno.EPERM
