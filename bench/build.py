#!/usr/bin/env python3
"""`minirun build` next to `podman build`: cold build, fully cached rebuild,
and what one RUN step costs over its command.

    sudo /opt/minirun/venv/bin/python bench/build.py [-n 7]

Rows (wall time of the whole command, median of n, and min):
  cold 4-step build      FROM busybox, RUN, COPY, CMD with --no-cache
  cached rebuild         the same, every step a cache hit
  RUN step overhead      (--no-cache build of FROM + `RUN touch /x`) minus
                         (--no-cache build of FROM + an ENV step), paired runs,
                         median of the differences: the price of one RUN
                         container, its overlay and its layer.  minirun's is
                         also measured in-process (library call, no Python
                         start-up in either term), the steadier figure on a busy host

Both tools get private stores under a temp dir (podman: --root/--runroot,
overlay storage driver, its own containers.conf with runc) and the same
busybox image (built offline); RUN steps use the host network in both.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "images"))
MINIRUN = shutil.which("minirun", path=os.path.dirname(sys.executable)) or shutil.which("minirun")

FOUR_STEPS = ("FROM busybox\nRUN echo hello > /hello\nCOPY app.txt /app/\n"
              "CMD [\"cat\", \"/app/app.txt\"]\n")
ONE_RUN = "FROM busybox\nRUN touch /x\n"
ONE_ENV = "FROM busybox\nENV A=1\n"


def sh(argv, env=None):
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def once(argv, env):
    t0 = time.monotonic()
    sh(argv, env)
    return time.monotonic() - t0


def in_process(ctx, store, root, n):
    """Seconds of n --no-cache builds of ctx through the library (no CLI)."""
    from minirun.build.executor import BuildOptions, run_build

    out = []
    with open(os.devnull, "w") as null:
        for _ in range(n):
            opts = BuildOptions(ctx, no_cache=True, quiet=True, store_root=store,
                                runtime_root=root)
            t0 = time.monotonic()
            run_build(opts, out=null)
            out.append(time.monotonic() - t0)
    return out


def context(base, name, dockerfile):
    path = os.path.join(base, name)
    os.makedirs(path)
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    with open(os.path.join(path, "app.txt"), "w") as f:
        f.write("app\n")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    import build_busybox

    base = tempfile.mkdtemp(prefix="bench-build-")
    try:
        build_busybox.build_rootfs(os.path.join(base, "rootfs"))
        layout = os.path.join(base, "layout")
        build_busybox.write_oci_layout(os.path.join(base, "rootfs"), layout)
        m_env = dict(os.environ, MINIRUN_STORE=os.path.join(base, "store"))
        m_env.pop("SOURCE_DATE_EPOCH", None)
        m = [MINIRUN, "--root", os.path.join(base, "mroot")]
        sh(m + ["load", "-i", layout, "--name", "busybox:latest"], m_env)
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n')
        p_env = dict(os.environ, CONTAINERS_CONF=conf)
        p = ["podman", "--root", os.path.join(base, "proot"), "--runroot",
             os.path.join(base, "prunroot"), "--storage-driver", "overlay",
             "--cgroup-manager", "cgroupfs"]
        ident = sh(p + ["pull", "-q", f"oci:{layout}:latest"], p_env).stdout.split()[-1]
        sh(p + ["tag", ident, "docker.io/library/busybox:latest"], p_env)
        p_build = p + ["build", "--network", "host", "--pull=never", "--layers"]
        ctx4 = context(base, "four", FOUR_STEPS)
        ctx_run = context(base, "run", ONE_RUN)
        ctx_env = context(base, "env", ONE_ENV)
        cases = (("cold 4-step build", m + ["build", "--no-cache", "-q", ctx4],
                  p_build + ["--no-cache", "-q", ctx4]),
                 ("cached rebuild", m + ["build", "-q", ctx4], p_build + ["-q", ctx4]),
                 ("FROM + RUN touch", m + ["build", "--no-cache", "-q", ctx_run],
                  p_build + ["--no-cache", "-q", ctx_run]),
                 ("FROM + ENV", m + ["build", "--no-cache", "-q", ctx_env],
                  p_build + ["--no-cache", "-q", ctx_env]))
        samples = {label: ([], []) for label, _, _ in cases}
        for _, m_argv, p_argv in cases:  # warm: base layers unpacked, cache filled
            sh(m_argv, m_env)
            sh(p_argv, p_env)
        for _ in range(args.n):  # interleaved, so a busy moment hits both tools
            for label, m_argv, p_argv in cases:
                samples[label][0].append(once(m_argv, m_env))
                samples[label][1].append(once(p_argv, p_env))
        print(f"{'':24}{'minirun median (min)':>24}{'podman median (min)':>24}{'ratio':>8}")
        for label, (ms, ps) in samples.items():
            m_med, p_med = statistics.median(ms), statistics.median(ps)
            print(f"{label:24}{m_med*1000:>15.0f} ms ({min(ms)*1000:.0f})"
                  f"{p_med*1000:>15.0f} ms ({min(ps)*1000:.0f}){m_med / p_med:>7.2f}x")

        def paired(tool):
            run_s, env_s = samples["FROM + RUN touch"][tool], samples["FROM + ENV"][tool]
            return statistics.median(a - b for a, b in zip(run_s, env_s))
        print(f"{'RUN step overhead':24}{paired(0)*1000:>18.0f} ms{paired(1)*1000:>21.0f} ms")
        os.environ["MINIRUN_STORE"] = m_env["MINIRUN_STORE"]
        store, root = m_env["MINIRUN_STORE"], os.path.join(base, "mroot")
        diffs = []
        for _ in range(args.n):
            run_t = in_process(ctx_run, store, root, 1)[0]
            env_t = in_process(ctx_env, store, root, 1)[0]
            diffs.append(run_t - env_t)
        print(f"{'RUN overhead in-process':24}{statistics.median(diffs)*1000:>18.0f} ms"
              f"  (min {min(diffs)*1000:.0f} ms)")
    finally:
        if "p" in dir():  # not `system reset`: it removes the host's podman networks too
            subprocess.run(p + ["rmi", "-af"], env=p_env, capture_output=True)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(base + "/")]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
