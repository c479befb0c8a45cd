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


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over http on 127.0.0.1 (a thread, stopped after)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    (root / "file.txt").write_text("downloaded\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_url_like_podman(minirun, podman, http_dir, tmp_path):
    from build_helpers import describe, drop_podman_mountpoints

    root, url = http_dir
    ctx = write_tree(str(tmp_path / "ctx"), {"Dockerfile": (
        f"FROM busybox\nADD {url}/file.txt /dl/\nADD {url}/file.txt /renamed\n")})
    minirun.build(ctx, "-t", "addurl")
    podman.build(ctx, "addurl")
    mine = describe(minirun.unpack("addurl", str(tmp_path / "m")))
    theirs = drop_podman_mountpoints(describe(podman.unpack("addurl", str(tmp_path / "p"))[0]),
                                     mine)
    assert mine["dl/file.txt"] == theirs["dl/file.txt"]
    assert mine["dl/file.txt"][1] == "0o600"
    assert mine == theirs
    # the content decides the cache
    again = minirun.build(ctx, "-t", "addurl").stdout
    assert again.count("Using cache") == 2
    (root / "file.txt").write_text("changed\n")
    assert minirun.build(ctx, "-t", "addurl").stdout.count("Using cache") == 0
    minirun("rmi", "addurl")
    podman("rmi", "addurl")


def test_from_pulls_a_missing_base(minirun, busybox_layout, tmp_path):
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        pytest.skip("needs docker-registry and skopeo")
    from registrytest import Registry, skopeo_push

    registry = Registry(str(tmp_path / "registry"))
    try:
        base = f"{registry.addr}/base/busybox:1"
        skopeo_push(busybox_layout, "latest", base)
        ctx = write_tree(str(tmp_path / "ctx"), {
            "Dockerfile": f"FROM {base}\nRUN echo on-pulled > /p\n"})
        # 127.0.0.1 is spoken to over plain http, as Docker does for a local registry
        minirun.build(ctx, "-t", "on-pulled")
        assert minirun.image(base)  # pulled into the store by the build
        assert minirun("run", "--rm", "on-pulled", "cat", "/p").stdout == "on-pulled\n"
        minirun("rmi", "on-pulled", base)
    finally:
        registry.stop()
