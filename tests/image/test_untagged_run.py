"""Images known only by id, used as Docker users do: `run $(build -q .)`, by
prefix, in FROM and COPY --from, tag/history/save/inspect; re-tag, prune and
rmi as Docker has them.  Real builds and containers in a private store."""
import json
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "frontend"))

from fe_helpers import Docker, build_layout, derive_layout  # noqa: E402


@pytest.fixture(scope="module")
def busybox_layout(tmp_path_factory):
    return build_layout(str(tmp_path_factory.mktemp("untagged-image")))


@pytest.fixture
def docker(busybox_layout):
    base = tempfile.mkdtemp(prefix="mruntag-")
    d = Docker(base)
    try:
        d.load(busybox_layout, "busybox:latest")
        yield d
    finally:
        leftovers = d.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    assert not leftovers, f"left behind: {leftovers}"


def context(tmp_path, dockerfile, name="ctx"):
    d = tmp_path / name
    d.mkdir()
    (d / "Dockerfile").write_text(dockerfile)
    return str(d)


def table(docker, *args):
    lines = docker("images", *args).stdout.splitlines()[1:]
    return [tuple(line.split()[:3]) for line in lines]


def test_build_q_then_run_by_id_and_prefix(docker, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nRUN echo built > /f\nCMD [\"cat\", \"/f\"]\n")
    image_id = docker("build", "-q", ctx).stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    short = image_id[7:19]
    for ref in (image_id, image_id[7:], short, image_id[7:13]):
        assert docker("run", "--rm", ref).stdout == "built\n"
    assert ("<none>", "<none>", short) in table(docker)
    assert table(docker, "--filter", "dangling=true") == [("<none>", "<none>", short)]
    assert [r[0] for r in table(docker, "--filter", "dangling=false")] == ["busybox"]
    # the RUN step's image: only with -a, and runnable by its id too
    steps = [r for r in table(docker, "-a") if r[2] != short and r[0] == "<none>"]
    assert len(steps) == 1
    assert docker("run", "--rm", steps[0][2], "cat", "/f").stdout == "built\n"
    assert json.loads(docker("image", "inspect", short).stdout)[0]["Id"] == image_id
    assert short in docker("history", short).stdout
    docker("save", "-o", str(tmp_path / "img.tar"), short)
    docker("tag", short, "named:1")
    assert ("named", "1", short) in table(docker) and ("<none>", "<none>", short) \
        not in table(docker)
    out = docker("rmi", "named:1").stdout
    assert "Untagged: named:1\n" in out and f"Deleted: {image_id}\n" in out
    assert table(docker, "-a") == [r for r in table(docker, "-a") if r[0] == "busybox"]


def test_from_and_copy_from_an_id(docker, tmp_path):
    base_id = docker("build", "-q", context(tmp_path, "FROM busybox\nRUN echo one > /one\n",
                                            "base")).stdout.strip()
    child = context(tmp_path, f"FROM {base_id[7:19]}\nCOPY --from={base_id[7:17]} /one /two\n"
                              "CMD [\"cat\", \"/one\", \"/two\"]\n", "child")
    child_id = docker("build", "-q", child).stdout.strip()
    assert docker("run", "--rm", child_id[7:19]).stdout == "one\none\n"


def test_retag_leaves_old_dangling_and_prune_removes_it(docker, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nENV V=1\n")
    old = docker("build", "-q", "-t", "app:1", ctx).stdout.strip()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\nENV V=2\n")
    new = docker("build", "-q", "-t", "app:1", ctx).stdout.strip()
    assert old != new
    assert ("<none>", "<none>", old[7:19]) in table(docker)
    assert ("app", "1", new[7:19]) in table(docker)
    out = docker("image", "prune", "-f").stdout
    assert out.startswith(f"Deleted Images:\ndeleted: {old}\n")
    assert "Total reclaimed space: " in out
    assert docker("run", "--rm", old[7:19], "true", check=False).returncode == 125
    assert [r[0] for r in table(docker)] == ["app", "busybox"]
    # -a: every image no container uses
    out = docker("image", "prune", "-a", "-f").stdout
    assert "untagged: app:1\n" in out and f"deleted: {new}\n" in out
    assert "untagged: busybox:latest\n" in out and table(docker, "-a") == []


def test_rmi_of_an_image_a_container_uses(docker, tmp_path):
    image_id = docker("build", "-q", context(tmp_path, "FROM busybox\nENV U=1\n")).stdout.strip()
    short = image_id[7:19]
    cid = docker("create", short, "true").stdout.strip()
    res = docker("rmi", short, check=False)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"minirun: conflict: unable to delete {short} (must be forced) - image is being "
        f"used by stopped container {cid[:12]}"]
    docker("tag", short, "used:1")
    res = docker("rmi", "used:1", check=False)
    assert res.returncode == 1 and "(must force) - container " + cid[:12] in res.stderr
    out = docker("rmi", "-f", "used:1").stdout
    assert out.startswith("Untagged: used:1\n") and "Deleted: sha256" not in out
    # kept, untagged, for its container: prune leaves it, start still works
    assert "Total reclaimed space" in docker("image", "prune", "-f").stdout
    assert ("<none>", "<none>", short) in table(docker)
    docker("start", "-a", cid)
    docker("rm", cid)
    assert docker("image", "prune", "-f").stdout.startswith(f"Deleted Images:\ndeleted: "
                                                            f"{image_id}\n")


def test_ambiguous_prefix_is_one_line(docker):
    from minirun.image.store import Store

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_untagged_unit import make_image

    store = Store(docker.store)
    seen = {}
    for n in range(2000):
        state = make_image(store, n)
        image_id = store.add_untagged(state.digest).id
        if image_id[7:10] in seen:
            break
        seen[image_id[7:10]] = image_id
    short = image_id[7:10]
    for args in (("run", "--rm", short), ("rmi", short), ("image", "inspect", short),
                 ("tag", short, "x:1")):
        res = docker(*args, check=False)
        assert res.returncode != 0 and res.stderr.strip().splitlines() == [
            f"minirun: ambiguous image id prefix: {short} (matches 2 images)"], args
    docker("image", "prune", "-f")


def test_wrongly_typed_config_field_fails_run_in_one_line(docker, busybox_layout, tmp_path):
    layout = derive_layout(busybox_layout, str(tmp_path / "bad"), Env=5)
    docker.load(layout, "bad:1")
    res = docker("run", "--rm", "bad:1", "true", check=False)
    assert res.returncode == 125 and res.stderr.strip().splitlines() == [
        "minirun: invalid image config: config.Env must be an array of strings, "
        "not a number (5)"]
    assert docker("ps", "-aq").stdout == ""


def test_rmi_of_an_image_a_running_container_uses_cannot_be_forced(docker, tmp_path):
    image_id = docker("build", "-q", context(tmp_path, "FROM busybox\nENV R=1\n")).stdout.strip()
    short = image_id[7:19]
    cid = docker("run", "-d", short, "sleep", "60").stdout.strip()
    for args in (("rmi", short), ("rmi", "-f", short)):
        res = docker(*args, check=False)
        assert res.returncode == 1 and res.stderr.strip().splitlines() == [
            f"minirun: conflict: unable to delete {short} (cannot be forced) - image is being "
            f"used by running container {cid[:12]}"], args
    docker("rm", "-f", cid)
    assert docker("rmi", short).stdout.startswith(f"Deleted: {image_id}\n")
