"""`minirun pull` and `unpack` in their plain forms run without click, and pull
imports only what it uses (a pull of a small image from a local registry takes
about as long as importing click, http.client or ssl would); anything else
still goes through click, with click's messages.  A real registry
(docker-registry on 127.0.0.1)."""
import os
import subprocess
import sys

import pytest
from imagebuild import busybox_rootfs_entries, entry, make_layout
from imagetest import need
from registrytest import ENV, Registry, minirun, skopeo_push

from minirun.cli import imagefast
from minirun.image import transfer
from minirun.image.store import Store
from minirun_testlib import REPO

# Never imported by a plain-http pull: each costs milliseconds (or tens of them).
EXPENSIVE = {"click", "ssl", "_ssl", "json", "re", "enum", "threading", "http.client", "email",
             "socket", "urllib.parse", "concurrent.futures", "functools", "collections",
             "contextlib", "datetime", "shutil", "base64", "typing", "importlib", "warnings",
             "minirun.cli.app",
             "minirun.cli.image", "minirun.cli.fastpath"}
MINIRUN = {"minirun", "minirun.cli", "minirun.cli.imagefast", "minirun.cli.fastcommon",
           "minirun.errors", "minirun.log", "minirun.flock",
           "minirun.jsonio", "minirun.image", "minirun.image.registry", "minirun.image.httpwire",
           "minirun.image.transfer", "minirun.image.credentials", "minirun.image.blobwriter",
           "minirun.image.store", "minirun.image.manifest", "minirun.image.reference"}

# Runs the CLI's entry point in a fresh `python -S` (as the launcher does) and
# writes sys.modules when the pull exits (it leaves through os._exit).
PROBE = """
import os, sys
out = sys.argv.pop(1)
real_exit = os._exit
def _exit(status):
    open(out, "w").write("\\n".join(sorted(sys.modules)))
    real_exit(status)
os._exit = _exit
from minirun.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def registry_ref(tmp_path_factory):
    need("docker-registry")
    need("skopeo")
    root = tmp_path_factory.mktemp("pull-fast")
    # two layers and a config: the downloads run on several threads
    make_layout(str(root / "small"), [busybox_rootfs_entries(),
                                      [entry("file", "etc/motd", b"hello\n")]])
    reg = Registry(str(root / "registry"))
    try:
        skopeo_push(str(root / "small"), "latest", f"{reg.addr}/test/small:latest")
        yield f"{reg.addr}/test/small:latest"
    finally:
        reg.stop()


def test_plain_http_pull_imports_only_what_it_uses(registry_ref, tmp_path):
    out = tmp_path / "modules.txt"
    env = dict(ENV, PYTHONPATH=os.pathsep.join([REPO] + [p for p in sys.path if os.path.isdir(p)]))
    env.pop("MINIRUN_TRACE", None)
    p = subprocess.run([sys.executable, "-S", "-c", PROBE, str(out), "pull", "-q", "--store",
                        str(tmp_path / "store"), registry_ref], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == registry_ref + "\n"
    loaded = set(out.read_text().split())
    assert not sorted(loaded & EXPENSIVE), f"pull imports {sorted(loaded & EXPENSIVE)}"
    stray = sorted(m for m in loaded if m.startswith("minirun") and m not in MINIRUN)
    assert not stray, f"pull imports minirun modules it is not known to need: {stray}"
    assert Store(str(tmp_path / "store")).resolve(registry_ref).layers


def test_fast_path_prints_what_click_prints(registry_ref, tmp_path):
    """The same pull through the fast path and through click (an option after
    the reference sends it to click): same stdout, stderr and exit code."""
    fast = minirun("pull", "--store", str(tmp_path / "a"), registry_ref)
    slow = minirun("pull", registry_ref, "--store", str(tmp_path / "b"))
    assert fast.stdout == slow.stdout == registry_ref + "\n"
    assert sorted(fast.stderr.splitlines()) == sorted(slow.stderr.splitlines())
    assert "Digest: sha256:" in fast.stderr
    for args in (["pull", "--store", str(tmp_path / "c"), "127.0.0.1:1/nothing:here"],):
        f, s = minirun(*args, check=False), minirun(*args[:1], *args[3:], *args[1:3],
                                                     check=False)
        assert (f.returncode, f.stdout, f.stderr) == (s.returncode, s.stdout, s.stderr)
        assert f.returncode == 1 and "Traceback" not in f.stderr


@pytest.mark.unprivileged
@pytest.mark.parametrize("args,expected", [
    (["pull", "busybox"], ("busybox", False, None, False, None)),
    (["pull", "--insecure", "-q", "--store", "/s", "h:5000/a:b"],
     ("h:5000/a:b", True, None, True, "/s")),
    (["pull", "--platform=linux/arm64", "--quiet", "--store=/s", "x"],
     ("x", False, "linux/arm64", True, "/s")),
    (["pull"], None), (["pull", "a", "b"], None), (["pull", "a", "-q"], None),
    (["pull", "--help"], None), (["pull", "-h", "x"], None),
    (["pull", "--bogus", "x"], None),
    (["pull", "--insecure=1", "x"], None), (["pull", "--store"], None), (["pull", "-qq", "x"], None),
    (["images"], None), (["--root", "/r", "pull", "x"], None),
])
def test_parse_takes_plain_forms_only(args, expected):
    opts = imagefast.parse(args)
    if expected is None:
        assert opts is None
    else:
        assert (opts.ref, opts.insecure, opts.platform, opts.quiet, opts.store_root) == expected


@pytest.mark.unprivileged
@pytest.mark.parametrize("args,expected", [
    (["unpack", "--image", "l:t", "d"], ("d", "l:t", None, False, None)),
    (["unpack", "--no-config", "--image=l", "--platform", "linux/arm64", "--store", "/s", "d"],
     ("d", "l", "linux/arm64", True, "/s")),
    (["unpack", "d"], None), (["unpack", "--image", "l"], None),
    (["unpack", "--image", "l", "d", "--no-config"], None), (["unpack", "--help"], None),
    (["unpack", "--no-config=1", "--image", "l", "d"], None),
])
def test_parse_unpack_plain_forms_only(args, expected):
    opts = imagefast.parse(args)
    if expected is None:
        assert opts is None
    else:
        assert (opts.dest, opts.image_spec, opts.platform, opts.no_config,
                opts.store_root) == expected


def test_unpack_fast_path_does_what_click_does(tmp_path):
    """Through the fast path and through click (an option after DEST): the
    same tree and config.json, and the same errors."""
    need("umoci")
    layout = str(tmp_path / "layout")
    make_layout(layout, [busybox_rootfs_entries(), [entry("file", "etc/motd", b"hi\n")]])
    fast = minirun("unpack", "--image", layout + ":latest", str(tmp_path / "a"))
    slow = minirun("unpack", "--image", layout + ":latest", str(tmp_path / "b"), "--store", "/x")
    assert (fast.stdout, fast.stderr) == (slow.stdout, slow.stderr) == ("", "")
    assert (tmp_path / "a/rootfs/etc/motd").read_bytes() == b"hi\n"
    assert (tmp_path / "a/config.json").read_text().replace(str(tmp_path / "a"), "D") == \
        (tmp_path / "b/config.json").read_text().replace(str(tmp_path / "b"), "D")
    for dest in ("a", "missing-image"):
        spec = layout + ":latest" if dest == "a" else str(tmp_path / "nothing")
        f = minirun("unpack", "--image", spec, str(tmp_path / dest), check=False)
        s = minirun("unpack", "--image", spec, str(tmp_path / dest), "--no-config", check=False)
        assert (f.returncode, f.stdout, f.stderr) == (s.returncode, s.stdout, s.stderr)
        assert f.returncode == 1 and "Traceback" not in f.stderr
    assert not (tmp_path / "missing-image").exists()


@pytest.mark.unprivileged
def test_in_parallel_runs_everything_and_reports_the_first_real_error():
    from minirun.image import registry

    done = []
    transfer.in_parallel(done.append, list(range(10)), 3, transfer.Cancelled())
    assert sorted(done) == list(range(10))

    cancelled = transfer.Cancelled()

    def work(item):
        if item == "bad":
            cancelled.set()
            raise registry.RegistryError("blob bad: digest mismatch")
        if cancelled.is_set():
            raise registry.RegistryError("cancelled")

    with pytest.raises(registry.RegistryError, match="digest mismatch"):
        transfer.in_parallel(work, ["bad", "a", "b", "c"], 2, cancelled)
