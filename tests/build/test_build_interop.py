"""An image built by minirun works elsewhere: `minirun save` then podman
loads and runs it; pushed to a real registry (Debian's docker-registry), skopeo
sees the same manifest digest and podman pulls and runs it."""
import json
import os
import shutil
import sys

import pytest
from build_helpers import run, write_tree
from conftest import needs_root

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "image"))

pytestmark = needs_root

DOCKERFILE = """\
FROM busybox
RUN echo built-by-minirun > /msg && rm /etc/group
COPY extra.txt /extra.txt
CMD ["sh", "-c", "cat /msg /extra.txt; test -e /etc/group || echo no-group"]
"""
EXPECTED = "built-by-minirun\nextra\nno-group\n"


@pytest.fixture(scope="module")
def built(minirun_session, tmp_path_factory):
    ctx = write_tree(str(tmp_path_factory.mktemp("interop") / "ctx"),
                     {"Dockerfile": DOCKERFILE, "extra.txt": "extra\n"})
    minirun_session.build(ctx, "-t", "interop:1")
    yield "interop:1"
    minirun_session("rmi", "interop:1")


def test_saved_image_runs_in_podman(minirun, podman, built, tmp_path):
    assert minirun("run", "--rm", built).stdout == EXPECTED
    archive = str(tmp_path / "interop.tar")
    minirun("save", "-o", archive, built)
    podman("load", "-i", archive)
    out = podman("run", "--rm", "--network", "none", f"docker.io/library/{built}").stdout
    assert out == EXPECTED
    podman("rmi", f"docker.io/library/{built}")


def test_push_then_skopeo_and_podman_pull(minirun, podman, built, tmp_path):
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        pytest.skip("needs docker-registry and skopeo")
    from registrytest import Registry

    registry = Registry(str(tmp_path / "registry"))
    try:
        ref = f"{registry.addr}/built/interop:1"
        minirun("tag", built, ref)
        minirun("push", "--insecure", ref)
        digest = minirun.image(ref).digest
        info = json.loads(run(["skopeo", "inspect", "--tls-verify=false",
                               f"docker://{ref}"]).stdout)
        assert info["Digest"] == digest
        podman("pull", "--tls-verify=false", ref)
        assert podman("run", "--rm", "--network", "none", ref).stdout == EXPECTED
        podman("rmi", ref)
        minirun("rmi", ref)
    finally:
        registry.stop()
