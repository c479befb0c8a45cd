import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from minirun.linux import syscalls  # noqa: E402


@pytest.fixture
def store(tmp_path):
    from minirun.image.store import Store

    s = Store(str(tmp_path / "store")).ensure()
    yield s
    # Unmount whatever container rootfs a test left behind, then the store goes with tmp_path.
    cdir = s.path("containers")
    for cid in os.listdir(cdir):
        rootfs = os.path.join(cdir, cid, "rootfs")
        try:
            syscalls.umount2(rootfs, syscalls.MNT_DETACH)
        except OSError:
            pass
