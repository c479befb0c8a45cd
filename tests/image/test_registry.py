"""Pulls from a real registry (Debian's docker-registry on 127.0.0.1, its own
config and storage under a temp dir, stopped by PID), images pushed by skopeo:
anonymous, token auth (a small token server here), OCI and Docker schema2
types, multi-platform indexes, a corrupted blob, a dropped connection, two
pulls at once."""
import base64
import http.client
import http.server
import json
import os
import subprocess
import threading

import pytest
from imagetest import need, diff_trees, tree, umoci_unpack
from imagebuild import busybox_rootfs_entries, entry, make_layout, add_index
from registrytest import ENV, Registry, TokenServer, minirun, skopeo_push

from minirun.image import overlay, registry
from minirun.image.store import Store


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg-images")
    make_layout(str(root / "small"), [busybox_rootfs_entries(),
                                      [entry("file", "etc/motd", b"hello\n")]])
    # A layer big enough to be cut in the middle (random: gzip cannot shrink it).
    big = os.urandom(3 << 20)
    make_layout(str(root / "big"), [[entry("file", "big.bin", big)]])
    # Two platforms behind one index.
    amd = make_layout(str(root / "multi"), [[entry("file", "arch", b"amd64")]], tag=None,
                      arch="amd64")
    arm = make_layout(str(root / "multi"), [[entry("file", "arch", b"arm64")]], tag=None,
                      arch="arm64")
    add_index(str(root / "multi"), [amd, arm], "latest")
    return root


@pytest.fixture(scope="module")
def plain_registry(images, tmp_path_factory):
    need("docker-registry")
    need("skopeo")
    reg = Registry(str(tmp_path_factory.mktemp("registry")))
    try:
        skopeo_push(str(images / "small"), "latest", f"{reg.addr}/test/small:latest")
        skopeo_push(str(images / "small"), "latest", f"{reg.addr}/test/small-docker:v2s2",
                    extra=["--format", "v2s2"])
        skopeo_push(str(images / "big"), "latest", f"{reg.addr}/test/big:latest")
        skopeo_push(str(images / "multi"), "latest", f"{reg.addr}/test/multi:latest",
                    extra=["--all"])
        yield reg
    finally:
        reg.stop()


def test_pull_oci_and_unpack_like_umoci(plain_registry, images, tmp_path):
    need("umoci")
    store = str(tmp_path / "store")
    ref = f"{plain_registry.addr}/test/small:latest"
    p = minirun("pull", ref, store=store)
    assert p.stdout.strip() == ref
    rows = json.loads(minirun("images", "--format", "json", store=store).stdout)
    assert [(r["repository"], r["tag"]) for r in rows] == [(f"{plain_registry.addr}/test/small",
                                                            "latest")]
    s = Store(store)
    image = s.resolve(ref)
    rootfs, cleanup = overlay.prepare_rootfs(image, "pulled", store=s)
    try:
        theirs = umoci_unpack(str(images / "small"), "latest", str(tmp_path / "umoci"))
        assert diff_trees(tree(rootfs, nlink=False), tree(theirs, nlink=False)) == []
    finally:
        cleanup()
    # pulling again downloads nothing and keeps the same digest
    assert minirun("pull", "-q", ref, store=store).stdout.strip() == ref


def test_pull_docker_schema2_and_by_digest(plain_registry, tmp_path):
    s = Store(str(tmp_path / "store"))
    image = registry.pull(f"{plain_registry.addr}/test/small-docker:v2s2", store=s)
    assert image.manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    again = registry.pull(f"{plain_registry.addr}/test/small-docker@{image.digest}", store=s)
    assert again.digest == image.digest
    assert s.resolve(f"{plain_registry.addr}/test/small-docker@{image.digest}").id == image.id


def test_pull_selects_platform(plain_registry, tmp_path):
    s = Store(str(tmp_path / "store"))
    ref = f"{plain_registry.addr}/test/multi:latest"
    assert registry.pull(ref, store=s).config["architecture"] == "amd64"
    arm = registry.pull(ref, store=s, platform="linux/arm64")
    assert arm.config["architecture"] == "arm64"
    with pytest.raises(registry.MinirunError, match="no image for platform linux/s390x"):
        registry.pull(ref, store=s, platform="linux/s390x")


def test_corrupted_blob_is_rejected(plain_registry, images, tmp_path):
    ref = f"{plain_registry.addr}/test/corrupt:latest"
    skopeo_push(str(images / "small"), "latest", ref)
    s = Store(str(tmp_path / "store"))
    probe = registry.pull(ref, store=Store(str(tmp_path / "probe")))
    layer = probe.layers[0]["digest"]
    path = plain_registry.blob_file(layer)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x55  # same size, different content
    with open(path, "wb") as f:
        f.write(data)
    p = minirun("pull", ref, store=s.root, check=False)
    assert p.returncode == 1
    assert layer in p.stderr and "digest mismatch" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert not s.has_blob(layer)
    assert os.listdir(s.path("tmp")) == []
    assert s.refs() == {}


def test_resume_after_dropped_connection(plain_registry, tmp_path):
    """A proxy cuts the first download of the big layer in the middle; the
    pull resumes it with a Range request."""
    upstream = plain_registry.addr
    seen = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            conn = http.client.HTTPConnection(upstream, timeout=10)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("accept", "range", "authorization")}
            conn.request("GET", self.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            is_blob = "/blobs/" in self.path and len(body) > (1 << 20)
            if is_blob:
                seen.append(self.headers.get("Range"))
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.end_headers()
            if is_blob and len(seen) == 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        s = Store(str(tmp_path / "store"))
        image = registry.pull(f"127.0.0.1:{server.server_address[1]}/test/big:latest", store=s)
        assert s.has_blob(image.layers[0]["digest"])
        assert len(seen) == 2 and seen[0] is None and seen[1].startswith("bytes=")
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_pulls(plain_registry, tmp_path):
    store = str(tmp_path / "store")
    ref = f"{plain_registry.addr}/test/big:latest"
    env = dict(ENV, MINIRUN_STORE=store)
    procs = [subprocess.Popen(["minirun", "pull", "-q", ref], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    s = Store(store)
    assert s.resolve(ref).layers
    assert os.listdir(s.path("tmp")) == []


@pytest.fixture(scope="module")
def token_registry(images, tmp_path_factory):
    need("docker-registry")
    need("openssl")
    base = str(tmp_path_factory.mktemp("token-registry"))
    tokens = TokenServer(base)
    reg = None
    try:
        reg = Registry(base, f"""auth:
  token:
    realm: {tokens.realm}
    service: test-registry
    issuer: test-issuer
    rootcertbundle: {tokens.cert}
""")
        skopeo_push(str(images / "small"), "latest", f"{reg.addr}/private/small:latest",
                    creds="alice:secret")
        yield reg, tokens
    finally:
        if reg:
            reg.stop()
        tokens.stop()


def test_token_auth(token_registry, tmp_path):
    reg, tokens = token_registry
    store = str(tmp_path / "store")
    auth = {"MINIRUN_AUTH_FILE": str(tmp_path / "auth.json"),
            "DOCKER_CONFIG": str(tmp_path / "no-docker")}
    ref = f"{reg.addr}/private/small:latest"
    p = minirun("pull", ref, store=store, check=False, env=auth)
    assert p.returncode == 1 and "unauthorized" in p.stderr, p.stderr
    p = minirun("login", "-u", "alice", "--password-stdin", reg.addr, check=False, env=auth)
    assert p.returncode == 1  # no password on stdin: rejected by the token server
    p = subprocess.run(["minirun", "login", "-u", "alice", "--password-stdin", reg.addr],
                       input="secret\n", capture_output=True, text=True,
                       env=dict(ENV, **auth))
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    assert os.stat(auth["MINIRUN_AUTH_FILE"]).st_mode & 0o077 == 0
    p = minirun("pull", ref, store=store, env=auth)
    assert p.stdout.strip() == ref
    scopes = [q.get("scope") for q, _ in tokens.requests]
    assert ["repository:private/small:pull"] in scopes
    minirun("logout", reg.addr, env=auth)
    assert minirun("pull", ref, store=str(tmp_path / "s2"), check=False,
                   env=auth).returncode == 1


def test_docker_config_credentials(token_registry, tmp_path):
    reg, _ = token_registry
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.addr: {
        "auth": base64.b64encode(b"alice:secret").decode()}}}))
    env = {"MINIRUN_AUTH_FILE": str(tmp_path / "none.json"), "DOCKER_CONFIG": str(cfg)}
    p = minirun("pull", "-q", f"{reg.addr}/private/small:latest",
                store=str(tmp_path / "store"), env=env)
    assert p.stdout.strip().endswith("private/small:latest")
