"""`minirun run`'s seccomp profile, proven by the kernel: a small static probe
(built here with gcc, bind-mounted into the busybox container) makes raw
system calls and prints what each returned.

  default          Docker's profile: the keyring (add_key, keyctl), unshare and
                   odd personality() values get EPERM; busybox works as usual
  --cap-add        the profile is resolved against the capabilities:
                   SYS_ADMIN opens mount and unshare (not the keyring)
  unconfined       no filter; --privileged: no filter unless a file is given
  FILE             a Docker-format profile (names, errnoRet, excludes.caps)
  inspect          HostConfig.SecurityOpt as Docker shows it
  bad FILE         exit 125, one clear line, nothing made
"""
import json
import shutil
import subprocess

import pytest

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long probe(const char *name) {
    if (!strcmp(name, "add_key"))        /* a key in the process keyring */
        return syscall(SYS_add_key, "user", "minirun-probe", "x", 1, -2);
    if (!strcmp(name, "keyctl"))         /* KEYCTL_GET_KEYRING_ID of the session keyring */
        return syscall(SYS_keyctl, 0, -3, 1);
    if (!strcmp(name, "unshare"))        /* a user namespace needs no capability */
        return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "personality"))    /* a value outside Docker's allowed five */
        return personality(ADDR_NO_RANDOMIZE);
    if (!strcmp(name, "mkdir"))
        return mkdir("/tmp/probe-dir", 0755);
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long rc = probe(argv[i]);
        int err = errno;
        if (rc >= 0)
            printf("%s=ok\n", argv[i]);
        else
            printf("%s=%s\n", argv[i], err == EPERM ? "EPERM" : err == EACCES ? "EACCES"
                   : err == ENOSYS ? "ENOSYS" : strerror(err));
    }
    return 0;
}
"""
PROBES = ["add_key", "keyctl", "unshare", "personality"]


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the syscall probe (scripts/install.sh installs it)")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O", "-o", str(d / "sysprobe"), str(d / "probe.c")],
                   check=True, capture_output=True)
    return str(d)


def results(output):
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def seccomp_mode(output):
    line = next(line for line in output.splitlines() if line.startswith("Seccomp:"))
    return int(line.split()[1])


def probe_run(docker, probe_dir, *flags, probes=PROBES, script=""):
    res = docker("run", "--rm", "-v", f"{probe_dir}:/probe:ro", *flags, "busybox", "sh", "-c",
                 f"/probe/sysprobe {' '.join(probes)}; grep Seccomp: /proc/self/status; {script}")
    return res.stdout


def test_default_profile_refuses_keyring_and_namespaces(docker, probe_dir):
    web = ("mkdir /www && echo hello > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && "
           "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8080/ && break; "
           "sleep 0.2; done; ls /bin/busybox")
    out = probe_run(docker, probe_dir, script=web)
    assert results(out) == {p: "EPERM" for p in PROBES}, out
    assert seccomp_mode(out) == 2
    # busybox as usual: a shell, files, a web server and a client over loopback
    assert "hello\n/bin/busybox\n" in out


def test_profile_follows_the_capabilities(docker, probe_dir):
    out = probe_run(docker, probe_dir, "--cap-add", "SYS_ADMIN",
                    script="mkdir /m && mount -t tmpfs scratch /m && echo mounted")
    assert results(out) == {"add_key": "EPERM", "keyctl": "EPERM", "unshare": "ok",
                            "personality": "EPERM"}, out
    assert "mounted" in out and seccomp_mode(out) == 2


def test_unconfined_and_privileged_have_no_filter(docker, probe_dir):
    docker("run", "--name", "free", "-v", f"{probe_dir}:/probe:ro", "--security-opt",
           "seccomp=unconfined", "busybox", "/probe/sysprobe", *PROBES)
    out = docker("logs", "free").stdout
    assert results(out) == {p: "ok" for p in PROBES}, out
    assert docker.inspect("free")["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]
    out = probe_run(docker, probe_dir, "--privileged", probes=["add_key"])
    assert results(out) == {"add_key": "ok"} and seccomp_mode(out) == 0
    docker("run", "--name", "default", "busybox", "true")
    assert not docker.inspect("default")["HostConfig"]["SecurityOpt"]  # Docker shows none


def test_profile_file(docker, probe_dir, tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"name": "add_key", "action": "SCMP_ACT_ERRNO",
             "comment": "the keyring stays closed unless the container may administer",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile, indent=2))
    probes = ["mkdir", "add_key", "keyctl"]
    docker("run", "--name", "custom", "-v", f"{probe_dir}:/probe:ro", "--security-opt",
           f"seccomp={path}", "busybox", "/probe/sysprobe", *probes)
    assert results(docker("logs", "custom").stdout) == {"mkdir": "EACCES", "add_key": "EPERM",
                                                        "keyctl": "ok"}
    kept, = docker.inspect("custom")["HostConfig"]["SecurityOpt"]
    assert kept.startswith("seccomp={") and json.loads(kept[len("seccomp="):]) == profile
    out = probe_run(docker, probe_dir, "--security-opt", f"seccomp={path}", "--cap-add",
                    "SYS_ADMIN", probes=probes)
    assert results(out) == {"mkdir": "EACCES", "add_key": "ok", "keyctl": "ok"}
    # --privileged keeps a profile given as a file (Docker does too)
    out = probe_run(docker, probe_dir, "--security-opt", f"seccomp={path}", "--privileged",
                    probes=["mkdir"])
    assert results(out) == {"mkdir": "EACCES"} and seccomp_mode(out) == 2


def test_bad_profile_file_makes_nothing(docker, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"defaultAction": "SCMP_ACT_ERRNO", ')
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_MAYBE"}]}))
    cases = [
        (tmp_path / "missing.json", "opening seccomp profile ({}) failed: no such file"),
        (broken, "decoding seccomp profile ({}) failed"),
        (unknown, "seccomp profile ({}): syscalls[0].action: unknown action 'SCMP_ACT_MAYBE'"),
    ]
    for path, message in cases:
        res = docker("run", "--name", "named", "--security-opt", f"seccomp={path}", "busybox",
                     "true", check=False)
        assert res.returncode == 125, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr   # no traceback
        assert message.format(path) in res.stderr, res.stderr
        assert docker.ids() == set()
    # the name was never taken
    docker("run", "--rm", "--name", "named", "busybox", "true")
