#!/usr/bin/env python3
"""Time to a ready container rootfs from an image (a second container from an image already unpacked).

    bench/image-rootfs.py [-n 20] [--layout DIR[:TAG]]

Without --layout, the Debian-like 4-layer test image (tests/image/imagebuild.py)
is built in a temp dir first.

Loads the OCI layout into a throwaway store, then times prepare_rootfs():
the first container (layers unpacked into the store's per-layer cache, then
an overlay mount) and N further containers (no unpack: mkdirs + one mount),
plus cleanup.  Prints medians in ms.  Root needed (overlay mounts).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirun.image import layout, overlay  # noqa: E402
from minirun.image.store import Store  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--layout")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="minirun-bench-", dir="/var/tmp")
    if not a.layout:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests", "image"))
        from imagebuild import debian_like_layers, make_layout

        make_layout(os.path.join(tmp, "layout"), debian_like_layers())
        a.layout = os.path.join(tmp, "layout") + ":latest"
    path, tag = layout.split_layout_ref(a.layout)
    try:
        store = Store(os.path.join(tmp, "store")).ensure()
        name = f"localhost/bench:{tag or 'latest'}"
        layout.load_archive(store, path, name=name)
        image = store.resolve(name)
        t = time.perf_counter()
        rootfs, cleanup = overlay.prepare_rootfs(image, "first", store=store)
        first = time.perf_counter() - t
        mode = "overlay" if os.path.ismount(rootfs) else "plain"
        entries = sum(len(d) + len(f) for _, d, f in os.walk(rootfs))
        cleanup()
        prep, clean = [], []
        for i in range(a.n):
            t = time.perf_counter()
            # what `minirun run IMAGE` does: resolve the name, then the rootfs
            image = Store(store.root).resolve(name)
            rootfs, cleanup = overlay.prepare_rootfs(image, f"c{i}", store=store)
            prep.append(time.perf_counter() - t)
            assert os.path.ismount(rootfs) == (mode == "overlay")
            t = time.perf_counter()
            cleanup()
            clean.append(time.perf_counter() - t)
        print(f"image {a.layout}: {len(image.layers)} layers, rootfs {entries} entries ({mode})")
        print(f"first container (unpack layers into the cache + mount): {first * 1000:.0f} ms")
        print(f"next containers, median of {a.n}: resolve name + ready rootfs {statistics.median(prep) * 1000:.1f}"
              f" ms, cleanup {statistics.median(clean) * 1000:.1f} ms")
    finally:
        for cid in os.listdir(os.path.join(tmp, "store", "containers")):
            overlay.release_rootfs(cid, Store(os.path.join(tmp, "store")))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
