"""Pure logic (no root): what create records before it makes the cgroup."""
import os

import pytest

from minirun.cgroups.v1 import V1Cgroup
from minirun.cgroups.v2 import V2Cgroup

pytestmark = pytest.mark.unprivileged


def test_v2_plan_lists_every_directory_mkdir_will_make(tmp_path):
    mount = str(tmp_path)
    os.makedirs(tmp_path / "a")
    cg = V2Cgroup("c", "/a/b/c", mount)
    cg.plan()
    assert cg.created == [f"{mount}/a/b", f"{mount}/a/b/c"]
    assert cg.to_dict()["created"] == cg.created  # what objects.json keeps


def test_v1_plan_covers_every_hierarchy(tmp_path):
    mounts = {"memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids"),
              "": str(tmp_path / "unified")}
    for m in mounts.values():
        os.makedirs(m)
    os.makedirs(tmp_path / "pids" / "minirun")  # a parent that exists is not ours
    dirs = {c: m + "/minirun/c" for c, m in mounts.items() if c}
    cg = V1Cgroup("c", "/minirun/c", dirs, mounts, unified=mounts[""] + "/minirun/c")
    cg.plan()
    assert sorted(cg.created) == sorted([
        f"{tmp_path}/memory/minirun", f"{tmp_path}/memory/minirun/c",
        f"{tmp_path}/pids/minirun/c",
        f"{tmp_path}/unified/minirun", f"{tmp_path}/unified/minirun/c"])


def test_created_dirs_are_not_listed_twice(tmp_path):
    cg = V2Cgroup("c", "/x/c", str(tmp_path))
    cg.plan()
    cg._note_created([f"{tmp_path}/x", f"{tmp_path}/x/c"])
    assert cg.created == [f"{tmp_path}/x", f"{tmp_path}/x/c"]
