"""Fixtures of the kube tests (helpers live in kube_helpers.py, cri_node.py and
cri_proto.py: conftest module names clash between test directories)."""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def kube_images(tmp_path_factory):
    from kube_helpers import build_images

    return build_images(str(tmp_path_factory.mktemp("kube-images")))


@pytest.fixture
def kube(kube_images):
    """A private store and --root with busybox:latest and the course's image
    (nginx:1.14.2, here busybox httpd); the test fails if anything is left."""
    from kube_helpers import Kube

    base = tempfile.mkdtemp(prefix="mrkube-")
    k = Kube(base)
    try:
        k.load(kube_images[0], "busybox:latest")
        k.load(kube_images[1], "nginx:1.14.2")
        yield k
    finally:
        # The tests check kube_leftovers() after their `kube down`; this is the
        # front end's check (records, mounts, cgroups, veths, tables), after the
        # controller is stopped and the Services' table removed.
        leftovers = k.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind: {leftovers}"
