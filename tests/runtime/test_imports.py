"""The verbs engines call for every container import only what they use.

containerd runs create, start, state, kill and delete for each container, and
each is a fresh interpreter: an import is paid on every call.  These tests
run each verb in a fresh `python -S` and compare sys.modules at exit with the
module set the verb is allowed, so a stray import (json's `re`/`enum` chain,
`signal`, `datetime`, `subprocess`, click, the front end...) fails here and
not, later, in a benchmark.  When a verb really needs a new module, add it to
the sets below, knowing every engine call pays for it.
"""
import os
import subprocess
import sys

import pytest

from minirun_testlib import REPO

# Whatever the verbs import from the standard library beyond `python -S -c pass`.
STDLIB = {"gc", "os", "os.path", "stat", "_stat", "posixpath", "genericpath", "_collections_abc", "errno",
          "fcntl", "_json", "_signal", "select", "time", "resource", "struct", "_struct",
          "termios", "_socket", "_cffi_backend", "prctl", "_prctl"}
# Never on these paths: each costs as much as a verb's own work, or more.
EXPENSIVE = {"json", "re", "enum", "signal", "datetime", "functools", "collections", "typing",
             "subprocess", "socket", "selectors", "shutil", "tempfile", "importlib.util",
             "click", "pyroute2", "yaml", "_distutils_hack", "site", "math", "uuid",
             "hashlib", "threading", "logging"}

COMMON = {"minirun", "minirun.cli", "minirun.cli.fastpath", "minirun.cli.fastcommon",
          "minirun.log", "minirun.errors",
          "minirun.jsonio", "minirun.runtime", "minirun.linux", "minirun.linux.trace",
          "minirun.linux.proc", "minirun.runtime.state",
          # start/kill/delete first ask whether the id is a front-end container's
          "minirun.frontend", "minirun.frontend.lookup"}
CGROUPS = {"minirun.cgroups", "minirun.cgroups.common", "minirun.cgroups.v1",
           "minirun.cgroups.v2", "minirun.linux.signals"}
# create itself imports only what it runs before the fork; stage 2's code
# (init/stage2.py, the rest of minirun/init, the C extension) is imported by
# stage 1.
SPAWN = {"minirun.init", "minirun.init.helper", "minirun.linux.capnames"}
ALLOWED = {
    "state": COMMON | {"minirun.runtime.query"} | CGROUPS,
    "list": COMMON | {"minirun.runtime.query"} | CGROUPS,
    "start": COMMON | {"minirun.runtime.start", "minirun.hooks"} | CGROUPS,
    "kill": COMMON | {"minirun.runtime.kill", "minirun.linux.signals"} | CGROUPS,
    "delete": COMMON | {"minirun.runtime.delete", "minirun.hooks", "minirun.linux.signals"}
    | CGROUPS,
    "create": COMMON | CGROUPS | SPAWN | {
        "minirun.runtime.create", "minirun.runtime.spawn",
        "minirun.runtime.channel", "minirun.hooks", "minirun.linux.signals", "minirun.spec",
        "minirun.spec_validate"},
}

# Runs argv through the CLI's entry point in this interpreter (started with
# -S, as the installed launcher starts it) and writes sys.modules at exit.
# The fast path leaves through os._exit (no atexit): the probe wraps it, and
# only the process it started writes (stage 1, a fork, leaves that way too).
PROBE = """
import atexit, os, sys
out = sys.argv.pop(1)
me = os.getpid()
def dump():
    if os.getpid() == me:
        open(out, "w").write("\\n".join(sorted(sys.modules)))
atexit.register(dump)
real_exit = os._exit
def _exit(code):
    dump()
    real_exit(code)
os._exit = _exit
{body}
"""


def _python_path():
    return os.pathsep.join([REPO] + [p for p in sys.path if p and os.path.isdir(p)])


def _modules(tmp_path, body, *argv):
    out = tmp_path / "modules.txt"
    env = dict(os.environ, PYTHONPATH=_python_path())
    env.pop("MINIRUN_TRACE", None)
    with open(tmp_path / "probe.out", "w") as sink:  # files, not pipes: create's init
        subprocess.run([sys.executable, "-S", "-c", PROBE.format(body=body), str(out),
                        *argv], env=env, stdout=sink, stderr=sink, check=False, timeout=60)
    return set(out.read_text().split())


def _baseline(tmp_path):
    return _modules(tmp_path, "pass")


def _check(verb, loaded, baseline):
    extra = loaded - baseline
    expensive = sorted(extra & EXPENSIVE)
    assert not expensive, f"`{verb}` imports {expensive}"
    stray = sorted(m for m in extra if m not in ALLOWED[verb] and m not in STDLIB)
    assert not stray, f"`{verb}` imports modules it is not known to need: {stray}"


@pytest.mark.unprivileged
@pytest.mark.parametrize("verb,module", [
    ("state", "minirun.runtime.query"), ("start", "minirun.runtime.start"),
    ("kill", "minirun.runtime.kill"), ("delete", "minirun.runtime.delete"),
    ("create", "minirun.runtime.create")])
def test_verb_modules_import_only_what_they_use(tmp_path, verb, module):
    loaded = _modules(tmp_path, f"import minirun.cli.fastpath, {module}")
    _check(verb, loaded, _baseline(tmp_path))


def test_lifecycle_through_the_cli_imports_only_what_it_uses(tmp_path, runtime, bundle, cid):
    """A real create/state/start/kill/delete, each verb in its own process."""
    bundle.process["args"] = ["sleep", "60"]
    bundle.save()
    baseline = _baseline(tmp_path)
    cli = "from minirun.cli import main\nmain(sys.argv[1:])"
    steps = [("create", ["create", "--bundle", bundle.path, cid]), ("state", ["state", cid]),
             ("start", ["start", cid]), ("state", ["state", cid]), ("list", ["list"]),
             ("kill", ["kill", cid, "KILL"]), ("delete", ["delete", "--force", cid])]
    for verb, args in steps:
        loaded = _modules(tmp_path, cli, "--root", runtime.root, *args)
        assert "minirun.runtime." + {"state": "query", "list": "query"}.get(verb, verb) in loaded, \
            f"`{verb}` did not run through the fast path: {verb}"
        _check(verb, loaded, baseline)
    assert not runtime.ids()


def test_list_without_click_prints_what_click_prints(tmp_path, runtime, bundle, cid):
    bundle.process["args"] = ["sleep", "60"]
    bundle.save()
    runtime("create", "--bundle", bundle.path, cid)
    runtime("create", "--bundle", bundle.path, cid + "b")
    runtime("start", cid)
    env = dict(os.environ, PYTHONPATH=_python_path())
    for args in ([], ["-q"], ["--format", "json"], ["-f", "table"]):
        argv = ["--root", runtime.root, "list", *args]
        fast = subprocess.run([sys.executable, "-S", "-c", "import sys\nfrom minirun.cli import main"
                               "\nmain(sys.argv[1:])", *argv], env=env, capture_output=True,
                              text=True)
        slow = subprocess.run([sys.executable, "-S", "-c", "import sys\nfrom minirun.cli.app "
                               "import run_click\nrun_click(sys.argv[1:])", *argv], env=env,
                              capture_output=True, text=True)
        assert (fast.returncode, fast.stdout, fast.stderr) == \
            (slow.returncode, slow.stdout, slow.stderr), args
        assert cid in fast.stdout
