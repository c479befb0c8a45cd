"""Store bookkeeping (load, save, images, inspect, rmi, prune) through the CLI,
docker-save archives, and image config -> bundle config.json."""
import io
import json
import os
import sys
import subprocess
import tarfile

import pytest
from imagebuild import busybox_rootfs_entries, entry, make_layout, tar_bytes

from minirun.errors import MinirunError
from minirun.image import bundle, layout
from minirun.image.store import Store

ENV = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")

CONFIG = {"Entrypoint": ["/bin/busybox"], "Cmd": ["sh", "-c", "id"], "Env": ["A=1"],
          "WorkingDir": "/home/user", "User": "user", "ExposedPorts": {"80/tcp": {}},
          "Volumes": {"/data": {}}, "Labels": {"org.example": "yes"},
          "StopSignal": "SIGTERM"}


def run(*args, store, check=True, input=None):
    p = subprocess.run(["minirun", *args], capture_output=True, text=True, input=input,
                       env=dict(ENV, MINIRUN_STORE=store))
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def bb_layout(tmp_path):
    path = str(tmp_path / "bb")
    make_layout(path, [busybox_rootfs_entries()], config=CONFIG)
    return path


def test_load_images_inspect_save_rmi_prune(bb_layout, tmp_path):
    store = str(tmp_path / "store")
    p = run("load", "-i", bb_layout, "--name", "example.com/bb:1", store=store)
    assert "Loaded image: example.com/bb:1" in p.stdout
    lines = run("images", store=store).stdout.splitlines()
    assert lines[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert lines[1].split()[:2] == ["example.com/bb", "1"]
    info = json.loads(run("image", "inspect", "example.com/bb:1", store=store).stdout)[0]
    assert info["Config"]["User"] == "user" and info["RepoTags"] == ["example.com/bb:1"]
    short_id = info["Id"].split(":")[1][:12]
    assert json.loads(run("image", "inspect", short_id, store=store).stdout)[0]["Id"] == info["Id"]
    archive = str(tmp_path / "bb.tar")
    run("save", "-o", archive, "example.com/bb:1", store=store)
    with tarfile.open(archive) as tf:
        names = tf.getnames()
        docker_manifest = json.load(tf.extractfile("manifest.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert docker_manifest[0]["RepoTags"] == ["example.com/bb:1"]
    # skopeo reads our archive as an OCI archive
    if subprocess.run(["which", "skopeo"], capture_output=True).returncode == 0:
        out = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:1"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    blobs = os.listdir(os.path.join(store, "blobs", "sha256"))
    assert "Untagged: example.com/bb:1" in run("rmi", "example.com/bb:1", store=store).stdout
    assert os.listdir(os.path.join(store, "blobs", "sha256")) == []
    p = run("rmi", "example.com/bb:1", store=store, check=False)
    assert p.returncode == 1 and "no such image" in p.stderr
    run("load", "-i", archive, store=store)
    assert sorted(os.listdir(os.path.join(store, "blobs", "sha256"))) == sorted(blobs)
    assert "Total reclaimed space" in run("image", "prune", store=store).stdout
    assert len(os.listdir(os.path.join(store, "blobs", "sha256"))) == len(blobs)


def test_docker_save_archive(tmp_path):
    """A `docker save` archive: manifest.json + config + uncompressed layer tars."""
    raw = tar_bytes([entry("file", "hello", b"hi")])
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["x"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in ((cfg_name, config), ("abc/layer.tar", raw),
                           ("manifest.json", json.dumps([{"Config": cfg_name,
                                                          "RepoTags": ["hello:v1"],
                                                          "Layers": ["abc/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    s = Store(str(tmp_path / "store"))
    [(name, image)] = layout.load_archive(s, str(archive))
    assert name == "docker.io/library/hello:v1"
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    from minirun.image import unpack

    unpack.unpack_image(s.resolve("hello:v1"), str(rootfs))
    assert (rootfs / "hello").read_bytes() == b"hi"


def test_bundle_from_image(bb_layout, tmp_path):
    store = str(tmp_path / "store")
    run("load", "-i", bb_layout, "--name", "bb", store=store)
    out = str(tmp_path / "bundle")
    run("bundle", "bb", out, store=store)
    spec = json.load(open(os.path.join(out, "config.json")))
    proc = spec["process"]
    assert proc["args"] == ["/bin/busybox", "sh", "-c", "id"]
    assert proc["cwd"] == "/home/user"
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert "A=1" in proc["env"] and any(e.startswith("PATH=") for e in proc["env"])
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    ann = spec["annotations"]
    assert ann["org.example"] == "yes"
    assert ann["org.opencontainers.image.exposedPorts"] == "80/tcp"
    assert ann["org.opencontainers.image.stopSignal"] == "SIGTERM"
    assert ann["minirun.image.volumes"] == "/data"
    assert os.path.isfile(os.path.join(out, "rootfs", "bin", "busybox"))
    assert os.stat(out).st_mode & 0o777 == 0o700
    # CMD override, user override with group name
    out2 = str(tmp_path / "bundle2")
    run("bundle", "-u", "daemon:wheel", "bb", out2, "echo", "hi", store=store)
    proc = json.load(open(os.path.join(out2, "config.json")))["process"]
    assert proc["args"] == ["/bin/busybox", "echo", "hi"]
    assert proc["user"] == {"uid": 2, "gid": 10}


def test_user_resolution_is_chrooted(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    # /etc/passwd is a symlink out of the rootfs: it must resolve inside it.
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:4242:4242::/:/bin/sh\n")
    os.symlink(str(outside), rootfs / "etc" / "passwd")
    with pytest.raises(MinirunError, match="unable to find user evil"):
        bundle.resolve_user(str(rootfs), "evil")
    assert bundle.resolve_user(str(rootfs), "1234:55") == {"uid": 1234, "gid": 55}
    assert bundle.resolve_user(str(rootfs), "") == {"uid": 0, "gid": 0}


def test_no_command_is_an_error():
    with pytest.raises(MinirunError, match="no command"):
        bundle.image_spec({"config": {}})


def test_load_rejects_corrupt_blob_and_keeps_nothing(bb_layout, tmp_path):
    s = Store(str(tmp_path / "store"))
    image = layout.OCILayout(bb_layout).resolve("latest")
    blob = os.path.join(bb_layout, "blobs", "sha256", image.layers[0]["digest"].split(":")[1])
    data = bytearray(open(blob, "rb").read())
    data[100] ^= 1
    open(blob, "wb").write(bytes(data))
    with pytest.raises(MinirunError, match=image.layers[0]["digest"]):
        layout.load_archive(s, bb_layout, name="bad")
    assert s.refs() == {} and not s.has_blob(image.layers[0]["digest"])
    assert os.listdir(s.path("tmp")) == []


def test_rmi_refuses_image_in_use(bb_layout, tmp_path):
    from minirun.image import overlay

    s = Store(str(tmp_path / "store"))
    layout.load_archive(s, bb_layout, name="bb:1")
    rootfs, cleanup = overlay.prepare_rootfs(s.resolve("bb:1"), "user1", store=s)
    try:
        with pytest.raises(MinirunError, match="container user1 is using its referenced image"):
            s.remove("bb:1")
        s.gc()  # must keep what the container's rootfs is made of
        assert os.path.isfile(os.path.join(rootfs, "bin", "busybox"))
        assert all(os.path.isdir(s.layer_dir(c)) for c in s.resolve("bb:1").chain_ids)
    finally:
        cleanup()
    assert s.remove("bb:1") == ["docker.io/library/bb:1"]
    s.gc()
    assert os.listdir(s.path("layers")) == [] and os.listdir(s.path("blobs", "sha256")) == []
