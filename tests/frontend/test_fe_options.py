"""Docker's run flags -> RunOptions: every bad value is one BadOption (exit 125)
before anything exists; good ones become typed values.  Pure logic, no root."""
import pytest

from minirun.errors import BadOption
from minirun.frontend.runopts import Mount, PortMapping, RunOptions


def flags(**kw):
    return RunOptions.from_flags("busybox", ["true"], **kw)


BAD = [
    dict(memory="99999999999999999999g"),      # would wrap around in the kernel: refused
    dict(memory="lots"),
    dict(memory="1m"),                           # below Docker's 6 MB minimum
    dict(memory="0"),
    dict(memory_swap="x"),
    dict(shm_size="-1"),
    dict(shm_size="0"),
    dict(cpus="0"),
    dict(cpus="abc"),
    dict(cpu_shares=-5),
    dict(pids_limit=-7),
    dict(publish=["99999:80"]),
    dict(publish=["80/sctp"]),
    dict(publish=["1.2.3:80:80"]),
    dict(expose=["http"]),
    dict(volumes=["relative:/x:bogus"]),
    dict(volumes=["/a:/"]),
    dict(mounts=["type=bind,target=/x"]),        # bind without source
    dict(mounts=["type=bind,source=/nonexistent-minirun,target=/x"]),
    dict(mounts=["type=nfs,target=/x"]),
    dict(mounts=["type=tmpfs,source=/a,target=/x"]),
    dict(mounts=["type=volume,target=relative"]),
    dict(mounts=["type=tmpfs,target=/x,tmpfs-mode=99z"]),
    dict(mounts=["type=volume,bogus=1,target=/x"]),
    dict(volumes=["/a:/x"], tmpfs=["/x"]),      # the same destination twice
    dict(devices=["/nonexistent-minirun"]),
    dict(devices=["/etc/passwd"]),               # not a device node
    dict(devices=["/dev/null:relative"]),
    dict(devices=["/dev/null:/dev/x:rwz"]),
    dict(add_hosts=["nohostip"]),
    dict(add_hosts=["h:1.2.3.999"]),
    dict(dns=["not-an-ip"]),
    dict(userns="keep-id"),
    dict(workdir="relative"),
    dict(restart="sometimes"),
    dict(restart="always", auto_remove=True),
    dict(ulimits=["nofile=2:1"]),
    dict(cap_add=["FLY"]),
    dict(security_opt=["seccomp=/nonexistent-minirun.json"]),
    dict(stop_signal="SIGNOPE"),
    dict(label_files=["/nonexistent-minirun"]),
    dict(labels=["=v"]),
    dict(env=["BAD KEY=1"]),
    dict(health_interval="1x"),
    dict(log_opts=["max-size=0"]),
    dict(publish=["8080:80"], network="none"),
    dict(hostname="h", network="container:other"),
]


@pytest.mark.parametrize("kw", BAD, ids=[",".join(f"{k}={v}" for k, v in b.items()) for b in BAD])
def test_bad_flags_are_one_clear_error(kw):
    with pytest.raises(BadOption) as info:
        flags(**kw)
    assert info.value.exit_code == 125
    assert "\n" not in str(info.value)


def test_good_flags_become_typed_values(tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("# a comment\nteam=a\nrole\n")
    opts = flags(name="web", memory="64m", memory_swap="-1", cpus="0.5", shm_size="128m",
                 publish=["127.0.0.1:8080:80/udp", "443"], publish_all=True, expose=["53/udp"],
                 volumes=["/srv:/data:ro", "cache:/cache", "/anon"],
                 mounts=["type=tmpfs,target=/t,tmpfs-size=1m", "type=volume,source=vol,target=/v",
                         f"type=bind,source={tmp_path},target=/b,readonly"],
                 devices=["/dev/null:/dev/mynull:r"], add_hosts=["db:10.0.0.9", "gw:host-gateway"],
                 dns=["9.9.9.9"], dns_search=["example.com"], userns="host",
                 label_files=[str(labels)], labels=["role=web"], restart="on-failure:3")
    assert opts.limits.memory == 64 << 20 and opts.limits.memory_swap == -1
    assert opts.limits.cpus == (50000, 100000) and opts.limits.shm_size == 128 << 20
    assert opts.ports == [PortMapping(80, 8080, "127.0.0.1", "udp"), PortMapping(443)]
    assert opts.publish_all and opts.expose == ["53/udp"]
    assert [m.kind for m in opts.mounts] == ["bind", "volume", "volume", "tmpfs", "volume",
                                             "bind"]
    assert opts.mounts[0] == Mount("bind", "/data", source="/srv", read_only=True)
    assert opts.mounts[3].tmpfs_options[-1] == "size=1048576"
    assert opts.mounts[5].read_only and opts.mounts[5].source == str(tmp_path)
    assert opts.devices[0].container_path == "/dev/mynull" and opts.devices[0].permissions == "r"
    assert opts.add_hosts == [("db", "10.0.0.9"), ("gw", "host-gateway")]
    assert opts.labels == {"team": "a", "role": "web"}
    assert opts.restart == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert opts.security.userns == "host"


def test_typed_options_are_checked_too():
    with pytest.raises(BadOption):
        RunOptions(image="busybox", auto_remove=True,
                   restart={"Name": "always", "MaximumRetryCount": 0})
    assert PortMapping.parse("8080:80").spec() == "0.0.0.0:8080:80/tcp"
