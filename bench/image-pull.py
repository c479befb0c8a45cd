#!/usr/bin/env python3
"""Image pull from a local registry, minirun side by side with skopeo.

    sudo /opt/minirun/venv/bin/python bench/image-pull.py [-n 7] [NAME=MINIRUN_COMMAND ...]

Starts a private `docker-registry` (Debian's distribution registry) on a free
127.0.0.1 port with its storage in a temp dir, pushes two images into it with
skopeo -- the demo busybox (images/out/oci/busybox, built if missing) and the
Debian-like 4-layer test image (tests/image/imagebuild.py) -- and then times,
interleaved with the order swapped every round, from an empty destination each
time:

  minirun  minirun pull --insecure -q --store DEST 127.0.0.1:PORT/NAME:TAG
           (every blob's digest verified, layers kept in the store)
  skopeo   skopeo copy --src-tls-verify=false docker://... oci:DEST:TAG

Medians and the median of per-round ratios.  Extra columns NAME=COMMAND run
COMMAND with minirun's arguments (e.g. another checkout's launcher, to
compare before/after in one run).  The registry is stopped (by the pid we
started) and everything is removed at the end.  Plain http, no traffic leaves
the machine.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX = os.path.join(REPO, "images", "out", "oci", "busybox")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(tmp):
    port = free_port()
    config = os.path.join(tmp, "registry.yml")
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {tmp}/registry
http:
  addr: 127.0.0.1:{port}
""")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=7)
    ap.add_argument("columns", nargs="*", metavar="NAME=COMMAND")
    a = ap.parse_args()
    extra = [tuple(c.split("=", 1)) for c in a.columns]
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool} (Debian: docker-registry, skopeo)")
    if not os.path.isdir(BUSYBOX):
        subprocess.run([sys.executable, os.path.join(REPO, "images", "build_busybox.py")],
                       check=True)
    minirun = shutil.which("minirun", path=os.path.dirname(sys.executable)) or "minirun"
    tmp = tempfile.mkdtemp(prefix="minirun-bench-", dir="/var/tmp")
    proc = None
    try:
        sys.path.insert(0, os.path.join(REPO, "tests", "image"))
        from imagebuild import debian_like_layers, make_layout

        debian = os.path.join(tmp, "debian-layout")
        make_layout(debian, debian_like_layers())
        proc, registry = start_registry(tmp)
        images = {"busybox": (BUSYBOX, "latest"), "debian-like": (debian, "latest")}
        for name, (layout, tag) in images.items():
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                            f"oci:{layout}:{tag}", f"docker://{registry}/{name}:{tag}"],
                           check=True)
        dest = os.path.join(tmp, "dest")
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  load "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}; median of {a.n} rounds")
        names = ["minirun", "skopeo"] + [name for name, _ in extra]
        print("| pull (ms) | " + " | ".join(names) + " | " +
              " | ".join(f"{n}/skopeo" for n in names if n != "skopeo") + " |")
        print("|---" * (2 * len(names)) + "|")
        for name, (_, tag) in images.items():
            ref = f"{registry}/{name}:{tag}"
            pull = ["pull", "--insecure", "-q", "--store", dest, ref]
            argvs = {"minirun": [minirun, *pull],
                     "skopeo": ["skopeo", "copy", "-q", "--src-tls-verify=false",
                                f"docker://{ref}", f"oci:{dest}:{tag}"]}
            argvs.update((name, [*cmd.split(), *pull]) for name, cmd in extra)
            times = {k: [] for k in argvs}
            # bytecode may be cached, as in an installed minirun (the first round warms)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            for i in range(a.n + 1):  # the first round warms the registry's caches
                order = list(argvs)[i % len(argvs):] + list(argvs)[:i % len(argvs)]
                for tool in order:
                    shutil.rmtree(dest, ignore_errors=True)
                    t0 = time.perf_counter()
                    subprocess.run(argvs[tool], check=True, stdout=subprocess.DEVNULL, env=env)
                    if i:
                        times[tool].append(time.perf_counter() - t0)
            meds = [f"{statistics.median(times[n]) * 1000:.0f}" for n in names]
            ratios = [f"{statistics.median(m / s for m, s in zip(times[n], times['skopeo'])):.2f}"
                      for n in names if n != "skopeo"]
            print(f"| {name} | " + " | ".join(meds + ratios) + " |", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
