"""Docker-format seccomp profiles -> OCI linux.seccomp (minirun/frontend/seccomp_profile.py).

Pure logic: the default profile resolved for given capabilities, machine and
kernel, the option values, and a table of malformed profiles, each refused
with the field named.  The kernel-level proof (a container that cannot call
add_key) is tests/frontend/test_fe_seccomp.py.
"""
import json

import pytest

from minirun.frontend import seccomp_profile as sp

pytestmark = pytest.mark.unprivileged

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def rules_for(oci, name):
    return [r for r in oci["syscalls"] if name in r["names"]]


def allowed_names(oci):
    return {n for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def test_default_profile_is_dockers_policy():
    profile = sp.load()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    oci = sp.resolve(profile, DOCKER_CAPS, machine="x86_64", kernel="6.1.0-57-amd64")
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = allowed_names(oci)
    assert {"read", "write", "openat", "execve", "socket", "wait4", "arch_prctl",
            "chroot"} - {"socket"} <= allowed
    # never allowed: the keyring; without CAP_SYS_ADMIN: mount, unshare, setns
    for name in ("add_key", "keyctl", "request_key", "mount", "unshare", "setns", "umount2",
                 "init_module", "reboot", "bpf"):
        assert not rules_for(oci, name), name
    # only the conditions of the OCI object are left
    for rule in oci["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}, rule


def test_argument_filtered_entries_are_kept():
    oci = sp.resolve(sp.load(), DOCKER_CAPS, machine="x86_64", kernel="6.1")
    personas = sorted(r["args"][0]["value"] for r in rules_for(oci, "personality"))
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    sockets = sorted((r["args"][0]["op"], r["args"][0]["value"]) for r in rules_for(oci, "socket"))
    assert sockets == [("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40), ("SCMP_CMP_LT", 38)]
    # clone without CAP_SYS_ADMIN: no namespace flags; clone3 says ENOSYS so
    # that libc falls back to clone
    clone, = rules_for(oci, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    clone3, = rules_for(oci, "clone3")
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


def test_capabilities_open_their_syscalls():
    oci = sp.resolve(sp.load(), DOCKER_CAPS + ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
                     machine="x86_64", kernel="6.1")
    allowed = allowed_names(oci)
    assert {"mount", "unshare", "setns", "clone", "clone3", "kcmp", "pidfd_getfd"} <= allowed
    assert not any(r.get("args") for r in rules_for(oci, "clone"))   # excluded with the cap
    assert "add_key" not in allowed
    no_chroot = sp.resolve(sp.load(), [c for c in DOCKER_CAPS if c != "CAP_SYS_CHROOT"],
                           machine="x86_64", kernel="6.1")
    assert "chroot" not in allowed_names(no_chroot)


def test_min_kernel_and_architecture_conditions():
    old = sp.resolve(sp.load(), DOCKER_CAPS, machine="x86_64", kernel="4.7.10")
    new = sp.resolve(sp.load(), DOCKER_CAPS, machine="x86_64", kernel="4.8.0-1-amd64")
    assert "ptrace" not in allowed_names(old) and "ptrace" in allowed_names(new)
    arm = sp.resolve(sp.load(), DOCKER_CAPS, machine="aarch64", kernel="6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in allowed_names(arm) and "cacheflush" in allowed_names(arm)
    assert "cacheflush" not in allowed_names(new)


def test_every_resolved_rule_compiles():
    from minirun.linux import seccomp

    if not seccomp.available():
        pytest.skip("libseccomp is not installed")
    for caps in (DOCKER_CAPS, DOCKER_CAPS + ["CAP_SYS_ADMIN"]):
        program, _ = seccomp.compile_filter(sp.resolve(sp.load(), caps))
        assert program and len(program) % 8 == 0


def test_option_values(tmp_path):
    assert sp.option_value("unconfined") == "unconfined"
    assert sp.option_value("builtin") == "builtin"
    path = tmp_path / "p.json"
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                             "comment": "legacy single name"}]}
    path.write_text(json.dumps(profile, indent=4))
    kept = sp.option_value(str(path))
    assert "\n" not in kept and json.loads(kept) == profile   # compact, like Docker's CLI
    path.unlink()   # the container keeps its policy without the file
    oci = sp.for_container(kept, DOCKER_CAPS)
    assert oci == {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                 "errnoRet": 13}]}


def test_privileged_and_unconfined_have_no_filter():
    assert sp.for_container("unconfined", DOCKER_CAPS) is None
    assert sp.for_container(None, DOCKER_CAPS, privileged=True) is None
    assert sp.for_container("builtin", DOCKER_CAPS, privileged=True) is None
    custom = json.dumps({"defaultAction": "SCMP_ACT_LOG"})
    assert sp.for_container(custom, DOCKER_CAPS, privileged=True) == {
        "defaultAction": "SCMP_ACT_LOG", "syscalls": []}
    assert sp.for_container(json.dumps({}), DOCKER_CAPS) is None  # Docker: nothing to enforce
    assert sp.for_container(None, DOCKER_CAPS)["defaultAction"] == "SCMP_ACT_ERRNO"


def test_plain_oci_object_passes_through():
    oci = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    sp.check(oci)
    assert sp.resolve(oci, DOCKER_CAPS) == oci


ALLOW = {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
BAD_PROFILES = [
    ([], "must be a JSON object"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "defaultAction: unknown action 'SCMP_ACT_NOPE'"),
    ({"syscalls": [ALLOW]}, "defaultAction: is required"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "both 'architectures' and 'archMap'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x86_64"]},
     "architectures: unknown value 'x86_64'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "amd64"}]}, "archMap[0]"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "flags"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "syscalls: must be an array"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, name="write")]},
     "syscalls[0]: both 'name' and 'names'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0]: names must list"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [3], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0].names: must be an array of strings"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [ALLOW, {"names": ["x"]}]},
     "syscalls[1].action: unknown action None"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, action="SCMP_ACT_NOTIFY")]},
     "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, errnoRet=70000)]},
     "syscalls[0].errnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, args=[
        {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]}, "syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, args=[
        {"index": 0, "value": 1, "op": "EQ"}])]}, "syscalls[0].args[0].op: unknown operator"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, args=[
        {"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])]}, "syscalls[0].args[0].value"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, includes={"caps": "X"})]},
     "syscalls[0].includes.caps"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [dict(ALLOW, excludes={"minKernel": "new"})]},
     "syscalls[0].excludes.minKernel"),
]


@pytest.mark.parametrize("profile,message", BAD_PROFILES,
                         ids=[m.split(":")[0][:30] for _, m in BAD_PROFILES])
def test_bad_profile_names_the_field(tmp_path, profile, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(profile))
    with pytest.raises(sp.ProfileError) as e:
        sp.option_value(str(path))
    assert message in str(e.value) and str(path) in str(e.value)
    assert e.value.exit_code == 125


def test_unreadable_or_undecodable_file(tmp_path):
    with pytest.raises(sp.ProfileError, match=r"opening seccomp profile \(/nonexistent/p.json\) "
                                              r"failed: no such file or directory"):
        sp.option_value("/nonexistent/p.json")
    path = tmp_path / "broken.json"
    path.write_text('{"defaultAction": ')
    with pytest.raises(sp.ProfileError, match="decoding seccomp profile"):
        sp.option_value(str(path))


def test_security_opt_spellings(tmp_path):
    from minirun.frontend import options

    assert options.parse_security_opts(["seccomp=unconfined"])["seccomp"] == "unconfined"
    assert options.parse_security_opts(["seccomp:unconfined"])["seccomp"] == "unconfined"
    assert options.parse_security_opts([])["seccomp"] is None
    path = tmp_path / "p.json"
    path.write_text('{"defaultAction": "SCMP_ACT_LOG"}')
    assert options.parse_security_opts([f"seccomp={path}"])["seccomp"] == \
        '{"defaultAction":"SCMP_ACT_LOG"}'
    assert options.parse_security_opts(["no-new-privileges:true"])["no_new_privileges"]
    with pytest.raises(sp.ProfileError):
        options.parse_security_opts(["seccomp=/nonexistent.json"])
