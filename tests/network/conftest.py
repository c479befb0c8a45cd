"""Fixtures for the network tests: a private store (purged and checked for
leftovers afterwards) and a factory of busybox "containers" (killed by PID)."""
import os
import shutil
import tempfile

import pytest

from net_helpers import BUSYBOX, Box, host_links, nft_table

@pytest.fixture
def store_root():
    """A private minirun root; purged afterwards, then checked for leftovers."""
    from minirun import network

    root = tempfile.mkdtemp(prefix="mrt-root-")
    store = network.Store(root)
    try:
        yield root
    finally:
        try:
            network.purge(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        assert nft_table(store.table) is None, "nftables table left behind"
        assert store.default_bridge not in host_links(), "bridge left behind"


@pytest.fixture
def boxes():
    """Factory for Boxes; all killed by PID at the end."""
    made = []
    tmp = tempfile.mkdtemp(prefix="mrt-www-")

    def make(cmd=f"{BUSYBOX} sleep 600", files=None, serve=None):
        if serve is not None:  # serve GET / with the text `serve` on port 80
            d = tempfile.mkdtemp(dir=tmp)
            with open(os.path.join(d, "index.html"), "w") as f:
                f.write(serve + "\n")
            cmd = f"{BUSYBOX} httpd -f -p 80 -h {d}"
        box = Box(cmd, files)
        made.append(box)
        return box

    try:
        yield make
    finally:
        for box in made:
            box.kill()
        shutil.rmtree(tmp, ignore_errors=True)
