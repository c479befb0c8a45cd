"""The same Dockerfiles built by minirun and by podman (buildah) must give
the same root filesystems and the same image config fields."""
import os
import shutil
import tempfile

import pytest
from build_helpers import config_fields, describe, drop_podman_mountpoints, write_tree
from cases import CASES
from conftest import needs_root

pytestmark = needs_root


@pytest.fixture(scope="module")
def contexts():
    base = tempfile.mkdtemp(prefix="mrbuild-ctx-")
    out = {}
    for name, case in CASES.items():
        files = {k: v for k, v in case.items() if k != "args"}
        out[name] = write_tree(os.path.join(base, name), files)
    yield out
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_image_as_podman(name, contexts, minirun, podman, tmp_path):
    args = CASES[name].get("args", [])
    minirun.build(contexts[name], "-t", f"cmp-{name}", *args)
    podman.build(contexts[name], f"cmp-{name}", *args)
    mine = describe(minirun.unpack(f"cmp-{name}", str(tmp_path / "minirun")))
    tree, podman_config = podman.unpack(f"cmp-{name}", str(tmp_path / "podman"))
    theirs = drop_podman_mountpoints(describe(tree), mine)
    diff = {k: (mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs))
            if mine.get(k) != theirs.get(k)}
    assert not diff, f"trees differ (minirun, podman): {diff}"
    assert config_fields(minirun.config(f"cmp-{name}")) == config_fields(podman_config)
    minirun("rmi", f"cmp-{name}")
