"""Shared test helpers: a demo rootfs, bundles, an isolated --root, and a way
to call the minirun CLI exactly as engines do (a subprocess).  The fixtures
are exposed by tests/conftest.py; import helpers from here (module names of
conftest files clash between test directories)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "images"))

import build_busybox  # noqa: E402

MINIRUN = shutil.which("minirun", path=os.path.dirname(sys.executable)) or shutil.which("minirun")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "unprivileged: pure logic, runs without root (the rest needs root)")


def pytest_collection_modifyitems(config, items):
    """Without root, run the pure-logic tests and skip the others (they start
    real containers, cgroups and network namespaces) with the reason."""
    if os.geteuid() == 0:
        return
    needs_root = pytest.mark.skip(reason="needs root: it runs real containers "
                                         "(run the suite as root for all of it)")
    for item in items:
        if item.get_closest_marker("unprivileged") is None:
            item.add_marker(needs_root)


@pytest.fixture(scope="session")
def demo_rootfs(tmp_path_factory):
    """A busybox rootfs shared read-only by tests (root.readonly=true)."""
    path = tmp_path_factory.mktemp("demo") / "rootfs"
    build_busybox.build_rootfs(str(path))
    return str(path)


class Runtime:
    """Calls `minirun --root <private root> ...` and cleans up what it made."""

    def __init__(self, root, log):
        self.root = root
        self.log = log

    def cmd(self, *args, log=False):
        base = [MINIRUN, "--root", self.root]
        if log:
            base += ["--log", self.log, "--log-format", "json"]
        return base + [str(a) for a in args]

    def __call__(self, *args, check=True, timeout=60, log=False, **kw):
        # Files, not pipes: a created or detached container inherits our
        # stdout/stderr (as with runc), so a pipe would never see EOF.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = subprocess.run(self.cmd(*args, log=log), timeout=timeout, stdout=out,
                                    stderr=err, text=True, **kw)
            out.seek(0)
            err.seek(0)
            result.stdout = out.read().decode(errors="replace")
            result.stderr = err.read().decode(errors="replace")
        if check and result.returncode != 0:
            raise AssertionError(f"minirun {' '.join(map(str, args))} failed "
                                 f"({result.returncode}): {result.stderr}")
        return result

    def state(self, cid):
        return json.loads(self("state", cid).stdout)

    def ids(self):
        """Container ids with state under the root (a dot-name, such as the
        .seccomp cache, is the runtime's own and never an id)."""
        try:
            return [n for n in os.listdir(self.root) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def cleanup(self):
        for cid in self.ids():
            self("delete", "--force", cid, check=False)


@pytest.fixture
def runtime(tmp_path):
    root = tmp_path / "state"
    rt = Runtime(str(root), str(tmp_path / "log.json"))
    yield rt
    rt.cleanup()
    leftover = rt.ids()
    assert not leftover, f"state left behind: {leftover}"


class Bundle:
    def __init__(self, path, config):
        self.path = path
        self.config = config

    def save(self):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f)
        return self

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]


def _new_bundle(path, rootfs, args):
    from minirun.spec import default_spec

    os.makedirs(path, exist_ok=True)
    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"] = {"path": rootfs, "readonly": True}
    return Bundle(str(path), config).save()


@pytest.fixture
def bundle(tmp_path, demo_rootfs):
    """A bundle on the shared read-only rootfs; edit .config then .save()."""
    return _new_bundle(tmp_path / "bundle", demo_rootfs, ["true"])


@pytest.fixture
def private_bundle(tmp_path):
    """A bundle with a writable rootfs of its own."""
    rootfs = tmp_path / "pbundle" / "rootfs"
    build_busybox.build_rootfs(str(rootfs))
    b = _new_bundle(tmp_path / "pbundle", "rootfs", ["true"])
    b.config["root"]["readonly"] = False
    return b.save()


@pytest.fixture
def cid():
    return "t" + uuid.uuid4().hex[:12]


def run_in(runtime, bundle, cid, script, check=True, **kw):
    """Run `sh -c script` in a fresh container; returns the CompletedProcess."""
    bundle.process["args"] = ["sh", "-c", script]
    bundle.save()
    result = runtime("run", "--bundle", bundle.path, cid, check=False, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"container failed ({result.returncode}): {result.stdout}"
                             f"{result.stderr}")
    return result
