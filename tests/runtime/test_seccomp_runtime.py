"""linux.seccomp applied by the runtime, with and without no_new_privs."""
import pytest

from minirun_testlib import run_in


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_blocks_configured_syscall(runtime, bundle, cid, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    out = run_in(runtime, bundle, cid,
                 "mkdir /dev/shm/x 2>&1; echo rc=$?; grep Seccomp: /proc/self/status; "
                 "touch /dev/shm/y && echo touch-ok")
    assert "Operation not permitted" in out.stdout and "rc=1" in out.stdout
    assert "Seccomp:\t2" in out.stdout and "touch-ok" in out.stdout


def test_seccomp_applies_to_exec(runtime, bundle, cid):
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    out = runtime("exec", cid, "sh", "-c", "mkdir /dev/shm/z 2>&1; echo rc=$?", check=False)
    assert "rc=1" in out.stdout


def test_unknown_seccomp_action_is_rejected(runtime, bundle, cid):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_BOGUS"}
    out = run_in(runtime, bundle, cid, "true", check=False)
    assert out.returncode != 0 and "SCMP_ACT_BOGUS" in out.stderr
    assert runtime.ids() == []
