"""Fixtures for the cgroup tests: real cgroups, real processes, always cleaned.

Every cgroup lives under a per-session parent "/minirun-test-<pid>" and is
killed and removed at the end of its test, pass or fail.
"""
import signal
import uuid

import pytest

from cg_helpers import TEST_PARENT, Child
from minirun import cgroups
from minirun.errors import CgroupError


@pytest.fixture
def spawn():
    """spawn(target) -> Child, killed and reaped after the test."""
    children = []

    def make(target):
        c = Child(target)
        children.append(c)
        return c

    yield make
    for c in children:
        c.cleanup()


@pytest.fixture
def make_cgroup():
    """make_cgroup(resources=None, path=None, create=True) -> a created Cgroup.

    Torn down after the test: every process in it killed, every directory
    removed, and the test's parent directories too.
    """
    made = []

    def make(resources=None, path=None, create=True, **open_kw):
        name = "c" + uuid.uuid4().hex[:8]
        cg = cgroups.open_cgroup(name, path or f"{TEST_PARENT}/{name}", **open_kw)
        made.append(cg)
        if create:
            cg.create(resources)
        return cg

    yield make
    errors = []
    for cg in reversed(made):
        try:
            if cg.exists():
                if cg.is_frozen():
                    cg.thaw()
                cg.kill_all(signal.SIGKILL)
            cg.destroy()
        except CgroupError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_cgroups():
    """Safety net: whatever a crashed test left under TEST_PARENT is killed
    and removed at the end of the session (the tests themselves assert on
    their own cleanup)."""
    yield
    import os

    from minirun.cgroups import common

    layout = common.Layout.read()
    mounts = {m for m, _ in layout.v1.values()}
    if layout.unified:
        mounts.add(layout.unified[0])
    for mount in mounts:
        top = mount + TEST_PARENT
        if not os.path.isdir(top):
            continue
        for pid in common.all_procs(top):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for d in common.subdirs_bottom_up(top):
            common.rmdir_retry(d)
