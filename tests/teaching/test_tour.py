"""The guided tour (docs/tour/): its outputs are what minirun prints today.

`generate.py --check` re-runs every chapter's commands and compares; the other
tests pin down the generator's parsing and masking, and mkbundle's edits.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from minirun_testlib import REPO

TOUR = os.path.join(REPO, "docs", "tour")


def load(name, filename):
    spec = importlib.util.spec_from_loader(
        name, importlib.machinery.SourceFileLoader(name, os.path.join(TOUR, filename)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = load("tour_generate", "generate.py")
mkbundle = load("tour_mkbundle", "mkbundle")


def test_tour_pages_match_what_minirun_prints_now():
    """CI's guard: fails with a diff when a chapter is stale (see docs/tour/README.md)."""
    # Chapter 16 uses the default --root, so the default network appears (as
    # docker0 does); the test removes it again unless it was there before.
    from minirun import network

    had_default_network = os.path.isdir("/sys/class/net/minirun0")
    try:
        proc = subprocess.run([sys.executable, os.path.join(TOUR, "generate.py"), "--check"],
                              capture_output=True, text=True, timeout=600)
    finally:
        if not had_default_network:
            network.purge()
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr
    assert len(re.findall(r": ok \(", proc.stdout)) == len(generate.chapters([]))


@pytest.mark.unprivileged
def test_every_chapter_is_indexed_and_has_commands_and_an_experiment():
    with open(os.path.join(TOUR, "README.md")) as f:
        index = f.read()
    chapters = generate.chapters([])
    assert len(chapters) >= 15
    for path in chapters:
        name = os.path.basename(path)
        assert f"({name})" in index, f"{name} is not linked from docs/tour/README.md"
        with open(path) as f:
            text = f.read()
        blocks, _ = generate.parse(text.split("\n"))
        assert blocks, f"{name}: no ```console block"
        assert re.search(r"^#+ Experiment", text, re.M), f"{name}: no experiment"


@pytest.mark.unprivileged
def test_parse_commands_continuations_and_heredocs():
    lines = ["text", "```console", "$ echo a \\", ">   b", "a b", "$ cat <<'EOF'", "> x", "> EOF",
             "x", "$ true", "```", "<!-- tour-cleanup: rm -rf /tmp/x -->"]
    blocks, hidden = generate.parse(lines)
    assert hidden == [(11, "cleanup", "rm -rf /tmp/x")]
    (block,) = blocks
    assert (block.start, block.end) == (2, 10)
    assert [(cmd, out) for _, cmd, out in block.items] == [
        ("echo a \\\n  b", ["a b"]), ("cat <<'EOF'\nx\nEOF", ["x"]), ("true", [])]


@pytest.mark.unprivileged
def test_parse_rejects_output_before_any_command():
    with pytest.raises(SystemExit):
        generate.parse(["```console", "output", "```"])


@pytest.mark.unprivileged
def test_shell_keeps_state_and_reports_status(tmp_path):
    with generate.Shell(str(tmp_path)) as sh:
        assert sh.run("X=42; cd /tmp") == []
        assert sh.run("echo $X $PWD; echo err >&2") == ["42 /tmp", "err"]
        assert sh.run("false") == ["(exit status 1)"]
        assert sh.run(f"echo {tmp_path}/x") == [f"{generate.DEFAULT_STORE}/x"]


@pytest.mark.unprivileged
def test_normalise_masks_run_to_run_noise_only():
    n = generate.normalise
    assert n("[minirun 12345] write /proc/23456/uid_map") == n("[minirun 999] write /proc/8888/uid_map")
    assert n("NSpid:\t939\t1") == n("NSpid:\t123456\t1")     # pids wrap around to 300
    assert n("939 root sleep 600") == n(" 31956 root sleep 600")
    assert n("uts:[4026531838]") == n("uts:[4026532179]")
    assert n("created 2026-11-26T15:47:32.319627Z") == n("created 2027-01-02T01:02:03.4Z")
    assert n("IMAGE ID dced68efbc11") == n("IMAGE ID 0123456789ab")
    # an image's age depends on the calendar the tour is checked on
    assert n("latest 10 months ago 1.0MB") == n("latest 11 months ago 1.0MB")
    assert n("2 years ago") == n("About a minute ago") == n("3 days ago")
    assert n("a    b\tc") == n("a b c")
    assert n("Up Less than a second") == n("Up 2 seconds") == n("Up About a minute")
    assert n("Address: 10.76.0.2") == n("Address: 172.18.0.3")
    assert n("tour-web-658f0d43a2-gsmbp 10.76.0.3") == n("tour-web-658f0d43a2-x8kq4 10.80.1.9")
    assert n("k8s_POD_tour-web-658f0d43a2-gsmbp_default") == n("k8s_POD_tour-web-658f0d43a2-x8kq4_default")
    # What a reader would notice must still count as a change.
    assert n("minirun: unable to set hostname") != n("minirun: cannot set hostname")
    assert n("exit status 137") != n("exit status 139")
    assert n("mode=755") != n("mode=700") and n("ptmxmode=0666") != n("ptmxmode=0600")
    assert n("19") != n("20")
    assert n("10.99.0.2/24") != n("10.99.0.3/24")
    assert n("Address:\t127.0.0.11:53") != n("Address:\t127.0.0.12:53")
    assert n("Up 2 seconds (healthy)") != n("Up 2 seconds (unhealthy)")
    assert n("tour-web-658f0d43a2-gsmbp") != n("tour-web-658f0d43a3-gsmbp")
    assert n("ip daddr 10.96.0.10") != n("ip daddr 10.96.0.11")
    assert n("Exited (0) 2 seconds ago") != n("Exited (1) 2 seconds ago")


def run_mkbundle(tmp_path, *edits):
    src = tmp_path / "src"
    (src / "rootfs" / "bin").mkdir(parents=True)
    (src / "config.json").write_text(json.dumps({
        "process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"],
                                                      "effective": ["CAP_KILL"]}},
        "root": {"path": "rootfs"}, "hostname": "h",
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}))
    dest = tmp_path / "dest"
    proc = subprocess.run([sys.executable, os.path.join(TOUR, "mkbundle"), str(dest),
                           "--from", str(src), *edits], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads((dest / "config.json").read_text()), proc.stdout, dest


@pytest.mark.unprivileged
def test_mkbundle_edits(tmp_path):
    config, out, dest = run_mkbundle(
        tmp_path, 'process.args=["sleep","600"]', 'linux.namespaces-={"type":"mount"}',
        'linux.namespaces+={"type":"user"}', "linux.resources.pids.limit=20", "hostname-",
        "process.capabilities+=CAP_CHOWN")
    assert config["process"]["args"] == ["sleep", "600"]
    assert config["linux"]["namespaces"] == [{"type": "pid"}, {"type": "user"}]
    assert config["linux"]["resources"] == {"pids": {"limit": 20}}
    assert "hostname" not in config
    caps = config["process"]["capabilities"]
    assert all("CAP_CHOWN" in caps[s] for s in ("bounding", "effective", "permitted"))
    assert os.path.isdir(dest / "rootfs" / "bin") and config["root"]["path"] == "rootfs"
    assert out.splitlines()[1:] == [
        '  process.args = ["sleep", "600"]', '  linux.namespaces -= {"type": "mount"}',
        '  linux.namespaces += {"type": "user"}', "  linux.resources.pids.limit = 20",
        "  hostname: removed", '  process.capabilities += "CAP_CHOWN" (every set)']
