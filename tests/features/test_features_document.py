"""The runtime-spec features document (features.md, features-linux.md)."""
import json

import pytest

from minirun import OCI_VERSION
from minirun.errors import ConfigError
from minirun.features import features
from minirun.linux import seccomp
from minirun.linux.caps import CAP_NAMES
from minirun.spec import NAMESPACE_TYPES, validate

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

# Every property features.md / features-linux.md define for runtime-spec 1.2.
TOP_LEVEL = {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
             "potentiallyUnsafeConfigAnnotations"}
LINUX = {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt",
         "mountExtensions"}


@pytest.fixture(scope="module")
def doc():
    # Through JSON, as `minirun features` prints it and engines read it.
    return json.loads(json.dumps(features()))


def minimal_config(version):
    return {"ociVersion": version, "root": {"path": "rootfs"}}


def test_required_versions(doc):
    assert doc["ociVersionMin"] == "1.0.0"
    assert doc["ociVersionMax"] == OCI_VERSION
    # "The runtime MUST accept this value as the ociVersion property of config.json."
    validate(minimal_config(doc["ociVersionMin"]))
    validate(minimal_config(doc["ociVersionMax"]))


def test_only_spec_defined_properties(doc):
    assert set(doc) <= TOP_LEVEL
    assert set(doc["linux"]) <= LINUX
    assert set(doc["linux"]["cgroup"]) <= {"v1", "v2", "systemd", "systemdUser", "rdma"}
    assert set(doc["linux"]["seccomp"]) <= {"enabled", "actions", "operators", "archs",
                                           "knownFlags", "supportedFlags"}


def test_hooks_and_mount_options(doc):
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                            "poststart", "poststop"]
    for option in ("ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "rprivate",
                   "rslave", "rshared", "runbindable", "nosymfollow", "remount", "relatime"):
        assert option in doc["mountOptions"]
    assert len(set(doc["mountOptions"])) == len(doc["mountOptions"])


def test_linux_namespaces_and_capabilities(doc):
    linux = doc["linux"]
    assert set(linux["namespaces"]) == set(NAMESPACE_TYPES)
    assert linux["capabilities"] == CAP_NAMES
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                               "rdma": False}
    assert linux["apparmor"] == {"enabled": False}
    assert linux["selinux"] == {"enabled": False}


def test_annotations_are_strings(doc):
    assert doc["annotations"]["minirun.version"]
    assert doc["annotations"]["io.github.seccomp.libseccomp.version"] == \
        seccomp.library_version()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in doc["annotations"].items())


# ---- the seccomp section is exactly what compile_filter accepts -------------

def test_seccomp_enabled(doc):
    sc = doc["linux"]["seccomp"]
    assert sc["enabled"] is True
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    assert "SCMP_ARCH_X86_64" in sc["archs"]
    assert "SCMP_ACT_NOTIFY" not in sc["actions"]  # no listener support, so not claimed


def test_every_action_compiles(doc):
    for action in doc["linux"]["seccomp"]["actions"]:
        program, _ = seccomp.compile_filter({"defaultAction": action})
        assert program
        program, _ = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW" if action !=
                                             "SCMP_ACT_ALLOW" else "SCMP_ACT_KILL",
                                             "syscalls": [{"names": ["mkdir"], "action": action}]})
        assert program


def test_every_operator_compiles(doc):
    for op in doc["linux"]["seccomp"]["operators"]:
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "valueTwo": 9, "op": op}]}]})


def test_every_arch_is_recognised(doc):
    for arch in doc["linux"]["seccomp"]["archs"]:
        try:
            seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch]})
        except ConfigError as e:
            # Recognised, but libseccomp cannot mix it with this host's byte order.
            assert "not a valid arch" not in str(e)
            assert "cannot add architecture" in str(e)
    seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]})


def test_supported_flags_compile_and_the_rest_are_refused(doc):
    sc = doc["linux"]["seccomp"]
    for flag in sc["supportedFlags"]:
        _, value = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]})
        assert value == seccomp.FLAGS[flag][0]
    for flag in set(sc["knownFlags"]) - set(sc["supportedFlags"]):
        with pytest.raises(ConfigError, match="not supported"):
            seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]})
