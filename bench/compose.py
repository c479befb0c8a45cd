#!/usr/bin/env python3
"""`minirun compose`: `up -d` and `down` of a 3-service project, and the embedded
DNS resolver's answer time from inside a container.

    sudo /opt/minirun/venv/bin/python bench/compose.py [-n 7] [--queries 2000]

Rows:
  compose up -d (3 services)   wall time of the whole command (CLI start-up included),
                               a new project each time: network, volume, 3 containers
  compose up -d (no change)    the same again: every container is found unchanged
  compose down -v              stop (the services trap SIGTERM), remove, network, volume
  resolver answer              one A query for a service name (2 replicas) to 127.0.0.11,
                               sent from a process inside a container's network namespace
                               (joined with setns), UDP round trip; median and p90

Everything runs inside a private mount and network namespace (unshare) with a
tmpfs over /run, and a private store and --root: bridges, veths and nftables
rules vanish with the namespace.  The image is the demo busybox
(images/out/oci/busybox, built offline if missing).
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
LAYOUT = os.path.join(REPO, "images", "out", "oci", "busybox")
MINIRUN = shutil.which("minirun", path=os.path.dirname(sys.executable)) or shutil.which("minirun")

HOLD = "trap 'exit 0' TERM; sleep 1000 & wait"
PROJECT = f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "{HOLD}"]
    deploy: {{replicas: 2}}
  api:
    image: busybox
    command: ["sh", "-c", "{HOLD}"]
    volumes: [data:/data]
  db:
    image: busybox
    command: ["sh", "-c", "{HOLD}"]
volumes:
  data:
"""


def sh(argv, env=None, check=True):
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def timed(argv, env):
    t0 = time.monotonic()
    sh(argv, env)
    return time.monotonic() - t0


def ms(samples):
    return f"{statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f})"


def resolver_times(pid, name, count):
    """Round trips of A queries for `name`, from inside the netns of `pid`."""
    from minirun.dns import wire
    from minirun.linux import syscalls

    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("127.0.0.11", 53))
            s.settimeout(2)
            out = []
            for i in range(count):
                q = wire.query(name, qid=i & 0xFFFF)
                t0 = time.perf_counter()
                s.send(q)
                data = s.recv(4096)
                out.append(time.perf_counter() - t0)
                if i == 0:
                    answers = wire.parse_response(data)["answers"]
                    assert len(answers) == 2, answers
            os.write(w, " ".join(f"{x:.9f}" for x in out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        data += chunk
    os.waitpid(child, 0)
    return [float(x) for x in data.split()]


def inner(args):
    base = tempfile.mkdtemp(prefix="mrbench-compose-")
    env = dict(os.environ, MINIRUN_STORE=os.path.join(base, "store"))
    root = os.path.join(base, "root")
    m = [MINIRUN, "--root", root]
    sh(m + ["load", "-i", LAYOUT, "--name", "busybox:latest"], env)
    proj = os.path.join(base, "bench")
    os.mkdir(proj)
    with open(os.path.join(proj, "compose.yaml"), "w") as f:
        f.write(PROJECT)
    c = m + ["compose", "-f", os.path.join(proj, "compose.yaml")]
    up, again, down = [], [], []
    try:
        for i in range(args.n):
            up.append(timed(c + ["up", "-d"], env))
            again.append(timed(c + ["up", "-d"], env))
            if i == args.n - 1:
                pid = int(sh(m + ["inspect", "-f", "{{.State.Pid}}", "bench-db-1"], env)
                          .stdout.strip())
                answers = resolver_times(pid, "web", args.queries)
            down.append(timed(c + ["down", "-v"], env))
    finally:
        sh(c + ["down", "-v"], env, check=False)
        shutil.rmtree(base, ignore_errors=True)
    print(f"compose up -d (3 services, 4 containers)  {ms(up)}")
    print(f"compose up -d (nothing changed)          {ms(again)}")
    print(f"compose down -v                          {ms(down)}")
    answers.sort()
    print(f"resolver answer (A, 2 replicas, n={len(answers)})    "
          f"median {statistics.median(answers) * 1e6:.0f} us, "
          f"p90 {answers[int(len(answers) * 0.9)] * 1e6:.0f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return inner(args)
    if not os.path.isdir(LAYOUT):
        sh([sys.executable, os.path.join(REPO, "images", "build_busybox.py")])
    script = 'mount -t tmpfs tmpfs /run && exec "$@"'
    argv = ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script, "sh",
            sys.executable, os.path.abspath(__file__), "--inner", "-n", str(args.n),
            "--queries", str(args.queries)]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
