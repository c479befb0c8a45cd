#!/usr/bin/env python3
"""What a bridged container's network costs: medians, side by side.

    sudo /opt/minirun/venv/bin/python bench/network_setup.py [-n 20] [--runtime]

Rows (milliseconds, median of n):
  import pyroute2 (extra)         paid once per process, only when networking happens
  attach, bridged + 1 port        warm process: veth, address, route, DNAT rule, files
  detach                          warm process: veth, IPAM entry, rule, files gone
  fresh process, no network       python + import minirun.network
  fresh process, bridged + 1 port python + import + attach (what `minirun run -p` adds)
With --runtime (needs a working `minirun create/start`): the median time from
`create` to a running container, without network vs bridged with `-p`, using the
runtime's CLI the way an engine would and attach() in between create and start.

Everything runs in a private --root and is purged at the end; the only traffic is
none (no packets are sent).
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BUSYBOX = "/bin/busybox"


def ms(samples):
    return f"{statistics.median(samples) * 1000:8.1f}"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def holder():
    """A process in a fresh netns, standing in for a created container."""
    p = subprocess.Popen(["unshare", "--net", BUSYBOX, "sleep", "600"])
    own = os.readlink("/proc/self/ns/net")
    while True:
        try:
            if os.readlink(f"/proc/{p.pid}/ns/net") != own:
                return p
        except FileNotFoundError:
            pass
        time.sleep(0.001)


def stop(p):
    p.send_signal(signal.SIGKILL)
    p.wait()


def timed_python(code):
    t = time.perf_counter()
    subprocess.run([PY, "-c", code], check=True, cwd=REPO)
    return time.perf_counter() - t


def bench_library(root, n):
    from minirun import network

    rows = []
    base = [timed_python("import minirun.network") for _ in range(n)]
    with_pr = [timed_python("import minirun.network.bridge, pyroute2.iproute") for _ in range(n)]
    rows.append(("import pyroute2 (extra)", [w - statistics.median(base) for w in with_pr]))

    network.list_networks(root=root)          # default network exists: not part of a container's cost
    attach, detach = [], []
    for i in range(n):
        p = holder()
        try:
            t = time.perf_counter()
            network.attach(f"bench{i}", p.pid, publish=[f"{free_port()}:80"], root=root)
            attach.append(time.perf_counter() - t)
            t = time.perf_counter()
            network.detach(f"bench{i}", root=root)
            detach.append(time.perf_counter() - t)
        finally:
            stop(p)
    rows.append(("attach, bridged + 1 port", attach))
    rows.append(("detach", detach))

    fresh_none, fresh_net = [], []
    for i in range(n):
        fresh_none.append(timed_python("import minirun.network"))
        p = holder()
        try:
            code = (f"from minirun import network; network.attach('fresh{i}', {p.pid}, "
                    f"publish=['{free_port()}:80'], root={root!r})")
            fresh_net.append(timed_python(code))
            network.detach(f"fresh{i}", root=root)
        finally:
            stop(p)
    rows.append(("fresh process, no network", fresh_none))
    rows.append(("fresh process, bridged + 1 port", fresh_net))
    return rows


def bench_runtime(root, n):
    """create -> (attach) -> start with minirun's OCI verbs; None if they do not work yet."""
    sys.path.insert(0, os.path.join(REPO, "images"))
    import build_busybox
    import json

    from minirun import network

    minirun = shutil.which("minirun", path=os.path.dirname(PY)) or shutil.which("minirun")
    bundle = tempfile.mkdtemp(prefix="mrt-bench-bundle-")
    rt_root = tempfile.mkdtemp(prefix="mrt-bench-rt-")
    made = []
    try:
        build_busybox.build_rootfs(os.path.join(bundle, "rootfs"))
        subprocess.run([minirun, "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/sleep", "600"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)

        def cli(*argv):
            # The container inherits create's stdio: never give it our pipes, or
            # reading them would wait for the container to exit.
            with tempfile.TemporaryFile() as err:
                res = subprocess.run([minirun, "--root", rt_root, *argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err)
                if res.returncode != 0:
                    err.seek(0)
                    raise RuntimeError(f"minirun {argv[0]}: {err.read().decode().strip()}")

        def one(cid, bridged):
            t = time.perf_counter()
            made.append(cid)
            cli("create", "--bundle", bundle, cid)
            state = json.loads(subprocess.run([minirun, "--root", rt_root, "state", cid], check=True,
                                              capture_output=True, text=True).stdout)
            if bridged:
                network.attach(cid, state["pid"], publish=[f"{free_port()}:80"], root=root)
            cli("start", cid)
            elapsed = time.perf_counter() - t
            cli("delete", "--force", cid)
            made.remove(cid)
            network.detach(cid, root=root)
            return elapsed

        try:
            one("mrtbenchprobe", False)
        except RuntimeError as e:
            print(f"(runtime rows skipped: {e})")
            return None
        plain = [one(f"mrtbenchp{i}", False) for i in range(n)]
        bridged = [one(f"mrtbenchb{i}", True) for i in range(n)]
        return [("container start, no network", plain), ("container start, bridged + 1 port", bridged)]
    finally:
        for cid in made:
            subprocess.run([minirun, "--root", rt_root, "delete", "--force", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(rt_root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="samples per row (default 20)")
    ap.add_argument("--runtime", action="store_true", help="also time create..start with the runtime's CLI")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    sys.path.insert(0, REPO)
    from minirun import network

    root = tempfile.mkdtemp(prefix="mrt-bench-root-")
    try:
        rows = bench_library(root, args.n)
        if args.runtime:
            rows += bench_runtime(root, args.n) or []
    finally:
        network.purge(root)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'what':36} {'median ms':>9}   (n={args.n}, {os.cpu_count()} CPUs)")
    for name, samples in rows:
        print(f"{name:36} {ms(samples)}")


if __name__ == "__main__":
    main()
