#!/usr/bin/env python3
"""Build the demo image offline from Debian's busybox-static.

Writes, under images/out/ (or --out):
  busybox/            an OCI runtime bundle: config.json + rootfs/
  oci/busybox/        an OCI image layout (index.json, blobs/) tagged "latest"
The rootfs holds /bin/busybox, a symlink per applet, /etc/passwd, /etc/group,
/etc/hostname and empty mount points; nothing is downloaded.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
HERE = os.path.dirname(os.path.abspath(__file__))
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" \
         "demo:x:1000:1000:demo:/home/demo:/bin/sh\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\ndemo:x:1000:\n"
DEMO_CMD = ["/bin/sh", "-c",
            'echo "Hello from minirun! I am pid $$ on host $(hostname), uid $(id -u)."']


def build_rootfs(rootfs):
    if os.path.exists(rootfs):
        shutil.rmtree(rootfs)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
              "home/demo", "var/www", "run"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chown(os.path.join(rootfs, "home/demo"), 1000, 1000)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin/busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hostname", "minirun\n")):
        with open(os.path.join(rootfs, "etc", name), "w") as f:
            f.write(text)
    with open(os.path.join(rootfs, "var/www/index.html"), "w") as f:
        f.write("<h1>hello from a minirun container</h1>\n")


def write_bundle(bundle):
    sys.path.insert(0, os.path.dirname(HERE))
    from minirun.spec import default_spec

    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = DEMO_CMD
    config["root"]["readonly"] = False
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def _blob(layout, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def write_oci_layout(rootfs, layout):
    if os.path.exists(layout):
        shutil.rmtree(layout)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, rootfs)
                info = tar.gettarinfo(full, arc)
                info.mtime = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    tar_bytes = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    layer = _blob(layout, gzip.compress(tar_bytes, mtime=0),
                  "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": DEMO_CMD, "WorkingDir": "/",
                   "Labels": {"org.opencontainers.image.title": "minirun busybox demo"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z",
                     "created_by": "images/build_busybox.py (Debian busybox-static)"}],
    }
    config_desc = _blob(layout, json.dumps(config).encode(),
                        "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer]}
    manifest_desc = _blob(layout, json.dumps(manifest).encode(),
                          "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest_desc]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "out"))
    args = parser.parse_args()
    if not os.path.exists(BUSYBOX):
        sys.exit(f"{BUSYBOX} not found: apt-get install busybox-static")
    bundle = os.path.join(args.out, "busybox")
    os.makedirs(bundle, exist_ok=True)
    build_rootfs(os.path.join(bundle, "rootfs"))
    write_bundle(bundle)
    write_oci_layout(os.path.join(bundle, "rootfs"), os.path.join(args.out, "oci", "busybox"))
    print(f"bundle: {bundle}\nimage:  {os.path.join(args.out, 'oci', 'busybox')}:latest")


if __name__ == "__main__":
    main()
