"""`minirun push` to a real registry (Debian's docker-registry on 127.0.0.1):
pulled back by skopeo, by minirun and by podman, same digests; monolithic and
chunked uploads; blobs already there; cross-repository mounts; Docker
schema2 manifests kept as stored; basic auth (htpasswd) and token auth."""
import json
import os
import resource
import shutil
import subprocess
import tempfile
import warnings

import pytest
from imagebuild import busybox_rootfs_entries, entry, make_layout
from imagetest import need
from registrytest import ENV, Registry, TokenServer, minirun, skopeo_push

from minirun.image import push as pushmod
from minirun.image import registry
from minirun.image.layout import load_archive
from minirun.image.store import Store


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("push-images")
    base = busybox_rootfs_entries()
    for info, _ in base:
        if info.islnk():  # podman applies a hard link's mode to the shared inode
            info.mode = 0o755
    make_layout(str(root / "small"), [base,
                                      [entry("file", "etc/motd", b"pushed by minirun\n")]],
                config={"Cmd": ["/bin/cat", "/etc/motd"]})
    # Random bytes: gzip cannot shrink them, so the layer is cut into chunks.
    make_layout(str(root / "big"), [[entry("file", "big.bin", os.urandom(700 << 10))]],
                compression=None)
    return root


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    need("docker-registry")
    r = Registry(str(tmp_path_factory.mktemp("push-registry")))
    try:
        yield r
    finally:
        r.stop()


def _store_with(tmp_path, layout, name):
    store = Store(str(tmp_path / "store")).ensure()
    load_archive(store, str(layout), name=name)
    return store


def _skopeo_digest(ref, creds=None):
    cmd = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
    if creds:
        cmd += ["--creds", creds]
    raw = subprocess.run(cmd + [f"docker://{ref}"], check=True, capture_output=True).stdout
    import hashlib

    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_push_then_pull_back_with_skopeo_and_minirun(reg, layouts, tmp_path):
    need("skopeo")
    ref = f"{reg.addr}/test/pushed:v1"
    store = _store_with(tmp_path, layouts / "small", ref)
    image = store.resolve(ref)
    p = minirun("push", ref, store=store.root)
    assert f"v1: digest: {image.digest}" in p.stderr, p.stderr
    assert p.stderr.count(": Pushed") == 3  # two layers and the config
    assert _skopeo_digest(ref) == image.digest
    out = tmp_path / "skopeo-copy"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{out}:v1"], check=True, capture_output=True)
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    again = registry.pull(ref, store=Store(str(tmp_path / "other")), stream=open(os.devnull, "w"))
    assert again.digest == image.digest and again.id == image.id
    # A second push finds every blob there already.
    p = minirun("push", ref, store=store.root)
    assert p.stderr.count("Layer already exists") == 3, p.stderr


def test_chunked_upload(reg, layouts, tmp_path):
    ref = f"{reg.addr}/test/chunked:latest"
    store = _store_with(tmp_path, layouts / "big", ref)
    image = store.resolve(ref)
    assert image.layers[0]["size"] > 3 * (200 << 10)
    log = tmp_path / "log"
    with open(log, "w") as stream:
        digest = pushmod.push(ref, store=store, chunk_size=200 << 10, stream=stream)
    assert digest == image.digest
    again = registry.pull(ref, store=Store(str(tmp_path / "back")), stream=open(os.devnull, "w"))
    assert again.digest == image.digest
    layer = image.layers[0]["digest"]
    with open(reg.blob_file(layer), "rb") as f, open(store.blob_path(layer), "rb") as g:
        assert f.read() == g.read()


def test_docker_schema2_kept_and_cross_repo_mount(reg, layouts, tmp_path):
    need("skopeo")
    # A schema2 image made by skopeo, pulled into the store, pushed elsewhere.
    src = f"{reg.addr}/test/schema2:v2s2"
    skopeo_push(str(layouts / "small"), "latest", src, extra=["--format", "v2s2"])
    store = Store(str(tmp_path / "store"))
    image = registry.pull(src, store=store, stream=open(os.devnull, "w"))
    assert image.manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    dst = f"{reg.addr}/test/copy-of-schema2:latest"
    store.tag(registry.reference.parse(dst), image.digest)
    p = minirun("push", dst, store=store.root)
    assert p.stderr.count("Mounted from test/schema2") == 3, p.stderr
    assert _skopeo_digest(dst) == image.digest


def test_push_errors(reg, tmp_path):
    p = minirun("push", f"{reg.addr}/test/nothing:latest", store=str(tmp_path / "s"),
                check=False)
    assert p.returncode != 0 and "no such image" in p.stderr and "Traceback" not in p.stderr


def test_podman_runs_what_minirun_pushed(reg, layouts, tmp_path):
    need("podman")
    need("runc")  # podman's own default may be crun, which refuses a hybrid cgroup host
    ref = f"{reg.addr}/test/podman:latest"
    store = _store_with(tmp_path, layouts / "small", ref)
    minirun("push", "-q", ref, store=store.root)
    # Private storage; ulimits podman may set here (its default nofile is
    # above this machine's hard limit).
    runroot = tempfile.mkdtemp(prefix="mr-prun-")  # podman wants it under 50 characters
    # Our own parent cgroup (podman's default, libpod_parent, would stay behind).
    cgroup_parent = "/" + os.path.basename(runroot)
    podman = ["podman", "--runtime", shutil.which("runc"), "--root", str(tmp_path / "proot"),
              "--runroot", runroot,
              "--storage-driver", "vfs", "--events-backend", "none",
              "--cgroup-manager", "cgroupfs", "--tmpdir", str(tmp_path / "ptmp")]
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1] % (1 << 62), 4096)
    try:
        p = subprocess.run(podman + ["pull", "-q", "--tls-verify=false", ref],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        p = subprocess.run(podman + ["run", "--rm", "--net=none", "--cgroup-parent",
                                     cgroup_parent, "--ulimit",
                                     f"nofile={nofile}:{nofile}", "--ulimit",
                                     f"nproc={nproc}:{nproc}", ref], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "pushed by minirun\n"
        out = tmp_path / "ours"
        minirun("pull", "-q", ref, store=str(tmp_path / "pulled"))
        minirun("bundle", "--store", str(tmp_path / "pulled"), ref, str(out))
        ours = subprocess.run(["minirun", "--root", str(tmp_path / "state"), "run", "--bundle",
                               str(out), "pushed-c"], capture_output=True, text=True, env=ENV)
        assert ours.returncode == 0 and ours.stdout == p.stdout, ours.stderr
        digest = subprocess.run(podman + ["image", "inspect", "--format", "{{.Digest}}", ref],
                                check=True, capture_output=True, text=True).stdout.strip()
        assert digest == store.resolve(ref).digest
    finally:
        subprocess.run(podman + ["rmi", "-af"], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)
        for hierarchy in [""] + os.listdir("/sys/fs/cgroup"):  # v2 root, or v1 hierarchies
            top = os.path.join("/sys/fs/cgroup", hierarchy, cgroup_parent.lstrip("/"))
            for d in (os.path.join(top, "conmon"), top):
                if os.path.isdir(d):
                    os.rmdir(d)  # empty once the container is gone


# --- auth ------------------------------------------------------------------------------------

def _auth_env(tmp_path):
    return {"MINIRUN_AUTH_FILE": str(tmp_path / "auth.json"),
            "DOCKER_CONFIG": str(tmp_path / "no-docker")}


def test_push_with_basic_auth(layouts, tmp_path):
    need("docker-registry")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    htpasswd = tmp_path / "htpasswd"  # bcrypt cost 4: the registry checks it per request
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)
    htpasswd.write_text(f"bob:{crypt.crypt('hunter2', salt)}\n")
    r = Registry(str(tmp_path / "reg"), f"""auth:
  htpasswd:
    realm: test
    path: {htpasswd}
""")
    try:
        ref = f"{r.addr}/team/app:1"
        store = _store_with(tmp_path, layouts / "small", ref)
        env = _auth_env(tmp_path)
        p = minirun("push", ref, store=store.root, env=env, check=False)
        assert p.returncode == 1 and "requires a login" in p.stderr, p.stderr
        p = subprocess.run(["minirun", "login", "-u", "bob", "--password-stdin", r.addr],
                           input="hunter2\n", capture_output=True, text=True,
                           env=dict(ENV, **env))
        assert p.returncode == 0, p.stderr
        saved = json.loads(open(env["MINIRUN_AUTH_FILE"]).read())
        assert list(saved["auths"]) == [r.addr]  # Docker's config.json format
        minirun("push", ref, store=store.root, env=env)
        back = registry.pull(ref, store=Store(str(tmp_path / "back")),
                             client=registry.Client(r.addr, credentials=("bob", "hunter2")),
                             stream=open(os.devnull, "w"))
        assert back.digest == store.resolve(ref).digest
    finally:
        r.stop()


def test_push_with_token_auth(layouts, tmp_path):
    need("docker-registry")
    need("openssl")
    tokens = TokenServer(str(tmp_path))
    r = None
    try:
        r = Registry(str(tmp_path / "reg"), f"""auth:
  token:
    realm: {tokens.realm}
    service: test-registry
    issuer: test-issuer
    rootcertbundle: {tokens.cert}
""")
        ref = f"{r.addr}/private/pushed:latest"
        store = _store_with(tmp_path, layouts / "small", ref)
        env = _auth_env(tmp_path)
        assert minirun("push", ref, store=store.root, env=env, check=False).returncode == 1
        p = subprocess.run(["minirun", "login", "-u", "alice", "--password-stdin", r.addr],
                           input="secret\n", capture_output=True, text=True,
                           env=dict(ENV, **env))
        assert p.returncode == 0, p.stderr
        minirun("push", ref, store=store.root, env=env)
        scopes = [q.get("scope") for q, _ in tokens.requests]
        assert ["repository:private/pushed:pull,push"] in scopes
        assert _skopeo_digest(ref, creds="alice:secret") == store.resolve(ref).digest
    finally:
        if r:
            r.stop()
        tokens.stop()


def test_mount_refused_falls_back_to_upload(reg, layouts, tmp_path):
    """Another local name on the same registry holds the blobs, but the
    registry does not: each mount is answered 202 and the blob is uploaded."""
    need("skopeo")
    never = f"{reg.addr}/test/never-pushed:latest"
    ref = f"{reg.addr}/test/after-refused-mount:latest"
    store = _store_with(tmp_path, layouts / "small", never)
    store.tag(registry.reference.parse(ref), store.resolve(never).digest)
    p = minirun("push", ref, store=store.root)
    assert p.stderr.count(": Pushed") == 3 and "Mounted" not in p.stderr, p.stderr
    assert _skopeo_digest(ref) == store.resolve(ref).digest


@pytest.mark.unprivileged  # pure logic
def test_upload_locations():
    client = registry.Client("127.0.0.1:5000", credentials=("u", "p"))
    loc = "/v2/a/blobs/uploads/u1?_state=x"
    assert pushmod._session_path(client, loc, "d") == loc
    assert pushmod._session_path(client, "http://127.0.0.1:5000" + loc, "d") == loc
    for bad in ("", "http://elsewhere:5000" + loc, "/other/path"):
        with pytest.raises(registry.RegistryError):
            pushmod._session_path(client, bad, "d")
    assert pushmod._with_query(loc, digest="sha256:ab") == loc + "&digest=sha256%3Aab"
    assert pushmod._with_query("/v2/a/u", digest="x") == "/v2/a/u?digest=x"
