"""The build cache, reproducible builds, commit, and bad input."""
import json
import os
import re

import pytest
from build_helpers import write_tree
from conftest import needs_root

pytestmark = needs_root

DOCKERFILE = """\
FROM busybox
ARG MODE=a
RUN echo first > /first
COPY one.txt /one.txt
RUN echo after-one > /after
COPY two.txt /two.txt
CMD ["cat", "/one.txt"]
"""


def steps(output):
    """[(step number, 'cache' | 'built')] for each step past FROM."""
    out, current = [], None
    for line in output.splitlines():
        m = re.match(r"Step (\d+)/\d+ : (\w+)", line)
        if m:
            current = (int(m.group(1)), m.group(2))
            continue
        if current and current[1] != "FROM" and current[1] != "ARG":
            if line.strip() == "---> Using cache":
                out.append((current[0], "cache"))
                current = None
            elif line.startswith(" ---> ") and "Running in" not in line:
                out.append((current[0], "built"))
                current = None
    return out


@pytest.fixture
def context(tmp_path):
    return write_tree(str(tmp_path / "ctx"), {"Dockerfile": DOCKERFILE, "one.txt": "1\n",
                                              "two.txt": "2\n"})


def test_cache_hits_and_invalidation(minirun, context):
    first = minirun.build(context, "-t", "cache-test", "--build-arg", "MODE=x").stdout
    assert [s for _, s in steps(first)] == ["built"] * 5
    assert "Successfully tagged cache-test:latest" in first
    again = minirun.build(context, "-t", "cache-test", "--build-arg", "MODE=x").stdout
    assert [s for _, s in steps(again)] == ["cache"] * 5
    image_id = minirun.image("cache-test").id
    assert f"Successfully built {image_id[7:19]}" in again
    # mtime alone does not matter (as in Docker); content does
    os.utime(os.path.join(context, "one.txt"), (1, 1))
    assert [s for _, s in steps(minirun.build(context, "-t", "cache-test", "--build-arg",
                                              "MODE=x").stdout)] == ["cache"] * 5
    with open(os.path.join(context, "one.txt"), "w") as f:
        f.write("changed\n")
    changed = minirun.build(context, "-t", "cache-test", "--build-arg", "MODE=x").stdout
    assert [s for _, s in steps(changed)] == ["cache", "built", "built", "built", "built"]
    # a build arg in scope is part of every later step's key
    other_arg = minirun.build(context, "--build-arg", "MODE=y").stdout
    assert [s for _, s in steps(other_arg)] == ["built"] * 5
    no_cache = minirun.build(context, "--no-cache", "--build-arg", "MODE=x").stdout
    assert [s for _, s in steps(no_cache)] == ["built"] * 5
    assert minirun("run", "--rm", "cache-test").stdout == "changed\n"
    minirun("rmi", "cache-test")


def test_quiet_prints_only_the_id(minirun, context, tmp_path):
    res = minirun.build(context, "-q", "--rm", "--label", "team=build", "--iidfile",
                        tmp_path / "iid", "-t", "quiet")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", res.stdout), res.stdout
    assert (tmp_path / "iid").read_text() == res.stdout.strip() == minirun.image("quiet").id
    assert minirun.config("quiet")["config"]["Labels"]["team"] == "build"
    minirun("rmi", "quiet")


def test_source_date_epoch_reproducible(minirun, context):
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = minirun.build(context, "-q", "--no-cache", env=env).stdout.strip()
    b = minirun.build(context, "-q", "--no-cache", "-t", "repro", env=env).stdout.strip()
    assert a == b
    first = minirun.image("repro").digest
    minirun.build(context, "-q", "--no-cache", "-t", "repro", env=env)
    assert minirun.image("repro").digest == first  # the manifest too, layers and all
    cfg = minirun.image("repro").config
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in cfg["history"][1:]} == {"2023-11-14T22:13:20Z"}
    minirun("rmi", "repro")


def test_history_and_inspect(minirun, context):
    minirun.build(context, "-t", "hist")
    rows = minirun("history", "hist").stdout.splitlines()
    assert rows[0].split()[:2] == ["IMAGE", "CREATED"]
    assert any("echo after-one" in r for r in rows)
    assert len(rows) == 1 + len(minirun.config("hist")["history"])
    # columns are as wide as their cells: CREATED never runs into CREATED BY
    by = rows[0].index("CREATED BY")
    assert all(r[by - 3:by] == "   " for r in rows[1:]), rows
    info = json.loads(minirun("image", "inspect", "hist").stdout)[0]
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 5
    assert info["History"][-1]["created_by"].startswith("/bin/sh -c #(nop) CMD")
    minirun("tag", "hist", "other/name:v1")
    assert minirun.image("other/name:v1").id == minirun.image("hist").id
    minirun("rmi", "hist", "other/name:v1")


def test_multistage_skips_unneeded_stage(minirun, tmp_path):
    ctx = write_tree(str(tmp_path / "ms"), {"Dockerfile": (
        "FROM busybox AS broken\nRUN exit 3\n"
        "FROM busybox AS good\nRUN echo good > /good\n"
        "FROM scratch\nCOPY --from=good /good /good\n")})
    out = minirun.build(ctx, "-t", "ms").stdout
    assert "exit 3" not in out
    assert minirun.build(ctx, "--target", "broken", check=False).returncode == 3
    minirun("rmi", "ms")


def test_onbuild_triggers_run_in_the_child(minirun, tmp_path):
    base = write_tree(str(tmp_path / "base"), {"Dockerfile": (
        "FROM busybox\nONBUILD RUN echo triggered > /trigger\n")})
    minirun.build(base, "-t", "onbuild-base")
    child = write_tree(str(tmp_path / "child"), {"Dockerfile": "FROM onbuild-base\n"})
    out = minirun.build(child, "-t", "onbuild-child").stdout
    assert "# Executing 1 build trigger" in out
    assert minirun("run", "--rm", "onbuild-child", "cat", "/trigger").stdout == "triggered\n"
    assert not minirun.config("onbuild-child")["config"].get("OnBuild")
    minirun("rmi", "onbuild-base", "onbuild-child")


def test_commit_then_run(minirun, tmp_path):
    name = "commit-src"
    minirun("run", "--name", name, "busybox", "sh", "-c",
            "echo committed > /made && rm /etc/passwd")
    try:
        out = minirun("commit", "-c", "CMD [\"cat\", \"/made\"]", "-c", "ENV C=1", name,
                      "committed:v1").stdout
        assert out.startswith("sha256:")
        assert minirun("run", "--rm", "committed:v1").stdout == "committed\n"
        res = minirun("run", "--rm", "committed:v1", "sh", "-c",
                      "echo $C; test -e /etc/passwd || echo gone")
        assert res.stdout.split() == ["1", "gone"]
        # the layer holds the container's changes, not the runtime's mount targets
        import tarfile

        image = minirun.image("committed:v1")
        with image.source.open_blob(image.layers[-1]["digest"]) as raw:
            names = set(tarfile.open(fileobj=raw, mode="r|gz").getnames())
        assert {"made", "etc/.wh.passwd"} <= names
        assert not names & {"etc/hosts", "etc/hostname", "etc/resolv.conf"}
        hist = minirun.config("committed:v1")["history"]
        assert len(hist) == 2
    finally:
        minirun("rm", "-f", name)
    minirun("rmi", "committed:v1")


@pytest.mark.parametrize("dockerfile,message,code", [
    ("FROM busybox\nRUN true\nFOO bar\n",
     "dockerfile parse error on line 3: unknown instruction: FOO", 1),
    ("FROM busybox\nCOPY onlyone\n",
     "dockerfile parse error on line 2: COPY requires at least two", 1),
    ("FROM busybox\nSHELL /bin/sh\n", "line 2: SHELL requires the arguments to be in JSON form", 1),
    ("FROM busybox\nENV A\n", "line 2: ENV must have two arguments", 1),
    ("FROM busybox\nCOPY missing.txt /x\n", "file not found in build context", 1),
    ("FROM localhost:1/no/such:image\n", "pull access denied for localhost:1/no/such:image", 1),
    ("FROM busybox\nRUN echo partial > /p && false\n",
     "The command '/bin/sh -c echo partial > /p && false' returned a non-zero code: 1", 1),
    ("FROM busybox\nRUN exit 7\n", "returned a non-zero code: 7", 7),
])
def test_bad_input(minirun, tmp_path, dockerfile, message, code):
    ctx = write_tree(str(tmp_path / "bad"), {"Dockerfile": dockerfile})
    blobs = set(os.listdir(os.path.join(minirun.store, "blobs", "sha256")))
    layers = set(os.listdir(os.path.join(minirun.store, "layers")))
    res = minirun.build(ctx, "-t", "bad", check=False)
    assert res.returncode == code, res.stdout + res.stderr
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    from minirun.image.store import Store

    assert Store(minirun.store).lookup("bad") is None
    if "RUN" not in dockerfile:  # nothing reached the store
        assert set(os.listdir(os.path.join(minirun.store, "blobs", "sha256"))) == blobs
    assert set(os.listdir(os.path.join(minirun.store, "layers"))) == layers


def test_copy_stays_inside_context_and_rootfs(minirun, tmp_path):
    """Sources resolve inside the context, destinations inside the rootfs,
    symlinks included (RESOLVE_IN_ROOT), whatever the names say."""
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    ctx = write_tree(str(tmp_path / "ctx"), {
        "Dockerfile": (f"FROM busybox\n"
                       f"RUN ln -s ../../../../..{host_dir} /escape\n"
                       f"COPY a.txt /escape/\n"
                       f"COPY links /links\n"),
        "a.txt": "inside\n",
        "links/up": ("link", "../../../../../../etc/passwd"),
    })
    minirun.build(ctx, "-t", "escape")
    assert not os.listdir(host_dir)  # nothing reached the host's directory
    out = minirun("run", "--rm", "escape", "sh", "-c",
                  f"cat {host_dir}/a.txt; readlink /links/up").stdout
    assert out == "inside\n../../../../../../etc/passwd\n"
    # a named source follows its symlink, inside the context: not found here
    for source in ("../../../../etc/passwd", "up"):
        bad = write_tree(str(tmp_path / f"bad{len(source)}"), {
            "Dockerfile": f"FROM busybox\nCOPY {source} /x\n",
            "up": ("link", "../../../../../../etc/passwd")})
        res = minirun.build(bad, check=False)
        assert res.returncode == 1 and "file not found in build context" in res.stderr, res.stderr
    minirun("rmi", "escape")


def test_sigterm_stops_a_running_step(minirun, tmp_path):
    import signal
    import subprocess
    import time

    from build_helpers import MINIRUN

    ctx = write_tree(str(tmp_path / "slow"), {"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    out = tmp_path / "out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([MINIRUN, "--root", minirun.root, "build", "--no-cache", ctx],
                                stdout=f, stderr=subprocess.STDOUT, env=minirun.env,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while b"Running in" not in out.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # the container is being created or runs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "build stopped by signal 15" in out.read_text()
