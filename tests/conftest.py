"""Fixtures for every test directory (defined in minirun_testlib)."""
from minirun_testlib import (  # noqa: F401
    bundle, cid, demo_rootfs, private_bundle, pytest_collection_modifyitems, pytest_configure,
    runtime,
)
