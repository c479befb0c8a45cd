"""Fixtures for the compose tests: a private store and --root with the locally
built busybox image (tests/frontend's helpers), and a project directory."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "frontend"))

from fe_helpers import Docker, build_layout  # noqa: E402


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory):
    return build_layout(str(tmp_path_factory.mktemp("compose-image")))


@pytest.fixture
def docker(busybox_layout):
    """`minirun --root <tmp>` with its own store, busybox:latest loaded; after the
    test everything is removed and anything left (containers, mounts, cgroups,
    veths, bridges, the nftables table, volumes) fails it."""
    base = tempfile.mkdtemp(prefix="mrcompose-")
    d = Docker(base)
    try:
        d.load(busybox_layout, "busybox:latest")
        yield d
    finally:
        # What `down -v` must have removed (the cleanup below removes it anyway).
        leftovers = [f"volume {v}" for v in _listdir(os.path.join(d.store, "volumes"))
                     if not v.startswith(".")]
        leftovers += [f"network {n[:-5]}" for n in
                      _listdir(os.path.join(d.root, ".network", "networks"))
                      if n.endswith(".json") and n != "bridge.json"]
        leftovers += d.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind: {leftovers}"


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
