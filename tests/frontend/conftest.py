"""Fixtures for the front-end tests (helpers live in fe_helpers.py: conftest
module names clash between test directories)."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fe_helpers import Docker, build_layout  # noqa: E402


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory):
    return build_layout(str(tmp_path_factory.mktemp("fe-image")))


@pytest.fixture
def docker(busybox_layout):
    """A private store and --root with busybox:latest loaded; everything is
    removed afterwards and the test fails if anything was left behind."""
    base = tempfile.mkdtemp(prefix="mrfe-")
    d = Docker(base)
    try:
        d.load(busybox_layout, "busybox:latest")
        yield d
    finally:
        leftovers = d.cleanup()
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind: {leftovers}"
