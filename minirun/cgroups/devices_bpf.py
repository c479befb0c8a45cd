"""Device access control on cgroup v2: a tiny eBPF program per container.

cgroup v2 has no devices.allow/devices.deny files.  Instead the kernel runs a
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup on every open(2)
and mknod(2) of a device node by a task in it; the program sees
struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } and
returns 1 (allow) or 0 (deny, the syscall fails with EPERM).

This module turns linux.resources.devices into such a program, by hand:
a handful of instruction encodings (below) rather than a compiler.  Rules
are tested last to first and the first match decides, which gives the v1
meaning "later rules override earlier ones"; a wildcard rule ("a", all
majors/minors) matches everything, so nothing before it matters.  No match
means allow, like a fresh v1 devices cgroup; OCI configs start with
"deny all" so in practice the default is deny.
A deny rule matches if the request shares any access letter with it (deny
"w" refuses "rw" opens); an allow rule only if it grants every letter asked.
"""
import os
import struct

from minirun.errors import CgroupError

from .common import normalize_device_rule

# struct bpf_cgroup_dev_ctx.access_type = (access << 16) | type
DEV_TYPE = {"b": 1, "c": 2}                 # BPF_DEVCG_DEV_BLOCK, _CHAR
DEV_ACCESS = {"m": 1, "r": 2, "w": 4}      # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# Registers: r1 = ctx on entry; r0 = return value.
R0, R1, R2, R3, R4, R5 = range(6)

# Opcodes (linux/bpf_common.h + linux/bpf.h), written out for reading.
LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W   dst = *(u32 *)(src + off)
AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K   dst &= imm (32-bit)
RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K   dst >>= imm (32-bit)
MOV32_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X   dst = src (32-bit)
MOV64_K = 0xB7      # BPF_ALU64 | BPF_MOV | BPF_K dst = imm
JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K   if dst == imm: pc += off
JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K   if dst != imm: pc += off
JNE_X = 0x5D        # BPF_JMP | BPF_JNE | BPF_X   if dst != src: pc += off
EXIT = 0x95         # BPF_JMP | BPF_EXIT          return r0


def insn(code, dst=0, src=0, off=0, imm=0):
    """One struct bpf_insn: u8 code, u8 dst:4 src:4, s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule):
    """Instructions that return the rule's verdict when it matches, and fall
    through to the next block (an earlier rule) when it does not."""
    checks = []  # (code, dst, src, imm) of jumps "to the end of this block"
    pre = {}     # index in checks -> instructions that must run before it
    if rule["type"] != "a":
        checks.append((JNE_K, R2, 0, DEV_TYPE[rule["type"]]))
    bits = sum(DEV_ACCESS[c] for c in rule["access"])
    if bits != 7:
        # r1 = requested & rule; allow needs all requested bits, deny any one.
        pre[len(checks)] = [insn(MOV32_X, R1, R3), insn(AND32_K, R1, imm=bits)]
        checks.append((JNE_X, R1, R3, 0) if rule["allow"] else (JEQ_K, R1, 0, 0))
    if rule["type"] != "a" and rule["major"] is not None:
        checks.append((JNE_K, R4, 0, rule["major"]))
    if rule["type"] != "a" and rule["minor"] is not None:
        checks.append((JNE_K, R5, 0, rule["minor"]))
    # Lay the block out, then point every check past its end.
    body = []
    for i, (code, dst, src, imm) in enumerate(checks):
        body.extend(pre.get(i, []))
        body.append((code, dst, src, imm))
    verdict = [insn(MOV64_K, R0, imm=1 if rule["allow"] else 0), insn(EXIT)]
    out = []
    for i, item in enumerate(body):
        if isinstance(item, bytes):
            out.append(item)
            continue
        code, dst, src, imm = item
        remaining = len(body) - i - 1 + len(verdict)
        out.append(insn(code, dst, src, off=remaining, imm=imm))
    return out + verdict


def program(rules):
    """linux.resources.devices -> eBPF bytecode (bytes), or None for no rules."""
    rules = [normalize_device_rule(r) for r in rules or []]
    if not rules:
        return None
    code = [
        insn(LDX_W, R2, R1, off=0), insn(AND32_K, R2, imm=0xFFFF),  # r2 = device type
        insn(LDX_W, R3, R1, off=0), insn(RSH32_K, R3, imm=16),      # r3 = access asked
        insn(LDX_W, R4, R1, off=4),                                 # r4 = major
        insn(LDX_W, R5, R1, off=8),                                 # r5 = minor
    ]
    for rule in reversed(rules):
        block = _rule_block(rule)
        code.extend(block)
        if len(block) == 2:
            # A rule without conditions decides everything: the verifier
            # rejects the unreachable code that would follow.
            return b"".join(code)
    code += [insn(MOV64_K, R0, imm=1), insn(EXIT)]  # no rule matched: allow (v1 default)
    return b"".join(code)


def evaluate(rules, kind, major, minor, access):
    """What the program decides, computed in Python: for tests and `--trace`
    readers who want to check a rule set without a kernel."""
    asked = sum(DEV_ACCESS[c] for c in access)
    for r in reversed([normalize_device_rule(x) for x in rules]):
        if r["type"] != "a":
            if r["type"] != kind:
                continue
            if r["major"] is not None and r["major"] != major:
                continue
            if r["minor"] is not None and r["minor"] != minor:
                continue
        bits = sum(DEV_ACCESS[c] for c in r["access"])
        if r["allow"] and asked & bits != asked:
            continue
        if not r["allow"] and not asked & bits:
            continue
        return r["allow"]
    return True


def apply(cgroup_dir, rules):
    """Load the program for `rules` and attach it to the cgroup directory.

    Attached without BPF_F_ALLOW_OVERRIDE/MULTI: the container cannot add a
    more permissive program below, and the program stays attached until the
    cgroup is removed (closing our fds does not detach it).
    """
    code = program(rules)
    if code is None:
        return
    from minirun.linux import syscalls

    try:
        prog_fd = syscalls.bpf_load_cgroup_device(code)
    except OSError as e:
        raise CgroupError(f"failed to load the device filter for {cgroup_dir}: {e.strerror}") \
            from None
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syscalls.bpf_prog_attach(dir_fd, prog_fd, syscalls.BPF_CGROUP_DEVICE, 0,
                                     path=cgroup_dir)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise CgroupError(f"failed to attach the device filter to {cgroup_dir}: "
                          f"{e.strerror}") from None
    finally:
        os.close(prog_fd)
