"""Fixtures for the build tests (helpers live in build_helpers.py)."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from build_helpers import BASE, Minirun, Podman, build_layout  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="builds run real containers: root")


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory):
    return build_layout(str(tmp_path_factory.mktemp("build-image")))


@pytest.fixture(scope="session")
def minirun_session(busybox_layout):
    """A private store with busybox:latest, shared by the tests of this directory."""
    base = tempfile.mkdtemp(prefix="mrbuild-")
    m = Minirun(base)
    try:
        m("load", "-i", busybox_layout, "--name", BASE)
        yield m
    finally:
        from minirun import network

        network.purge(m.root)  # RUN steps' default network: its bridge and nftables table
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def minirun(minirun_session):
    """The session store; the test fails if a build left anything behind."""
    yield minirun_session
    left = minirun_session.leftovers()
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="session")
def podman(busybox_layout):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    base = tempfile.mkdtemp(prefix="mrbuild-podman-")
    p = Podman(base)
    try:
        p.load_layout(busybox_layout, BASE)
        yield p
    finally:
        p.cleanup()
        shutil.rmtree(base, ignore_errors=True)
