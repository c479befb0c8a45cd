#!/usr/bin/env python3
"""Image unpack, minirun side by side with umoci (interleaved runs, medians).

    bench/image-unpack.py [-n 7] [--layout DIR[:TAG]] [NAME='COMMAND {layout} {tag} {dest}' ...]

Without --layout, builds the Debian-like 4-layer test image (tests/image/
imagebuild.py: whiteouts, an opaque dir, hard links, from this machine's
files) in a temp dir.  Columns: `minirun unpack`, `umoci unpack`, and any
NAME=COMMAND given (e.g. another checkout: 'old=env PYTHONPATH=/src/old
minirun unpack --image {layout}:{tag} {dest}').  Each run starts from an
absent destination; the page cache is warm.  Each round runs every column
once, in an order rotated per round (load from other work falls on all
columns alike); the ratio is the median of the per-round ratios to umoci.
A first round warms caches and is not counted.  Root needed (owners, devices).
"""
import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("--layout")
    ap.add_argument("columns", nargs="*", metavar="NAME=COMMAND")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="minirun-bench-", dir="/var/tmp")
    try:
        if a.layout:
            path, _, tag = a.layout.partition(":")
            tag = tag or "latest"
        else:
            sys.path.insert(0, os.path.join(HERE, "..", "tests", "image"))
            from imagebuild import debian_like_layers, make_layout

            path, tag = os.path.join(tmp, "layout"), "latest"
            make_layout(path, debian_like_layers())
        minirun = shutil.which("minirun") or os.path.join(os.path.dirname(sys.executable),
                                                          "minirun")
        columns = [("minirun", f"{minirun} unpack --no-config --image {{layout}}:{{tag}} {{dest}}"),
                   ("umoci", "umoci unpack --image {layout}:{tag} {dest}")]
        columns += [tuple(c.split("=", 1)) for c in a.columns]
        times = {name: [] for name, _ in columns}
        dest = os.path.join(tmp, "dest")
        # bytecode may be cached, as in an installed minirun
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for i in range(a.n + 1):
            order = columns[i % len(columns):] + columns[:i % len(columns)]
            for name, cmd in order:
                shutil.rmtree(dest, ignore_errors=True)
                argv = shlex.split(cmd.format(layout=path, tag=tag, dest=dest))
                t = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
                if i:
                    times[name].append(time.perf_counter() - t)
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  load "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
        print(f"image {path}:{tag}, {a.n} rounds, median wall time, median per-round ratio")
        for name, _ in columns:
            med = statistics.median(times[name])
            ratio = statistics.median(t / u for t, u in zip(times[name], times["umoci"]))
            print(f"  {name:<10} {med * 1000:8.0f} ms   {ratio:5.2f}x umoci")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
