"""Bad config.json values are refused before anything is made.

Table-driven over the schema itself (minirun/spec_validate.py, the
runtime-spec's rules as data): for every field, a value of the wrong type,
values out of range, an unknown enumeration value, a relative path where the
spec wants an absolute one, and each required field left out.  Every case
must fail with one ConfigError line naming the field, and leave no state
directory, cgroup or mount.  A sample goes through the CLI as engines call it:
exit status 1, one line, never a traceback.
"""
import copy
import json
import os
import uuid

import pytest

from minirun import spec_validate as sv
from minirun.errors import MinirunError
from minirun_testlib import MINIRUN  # noqa: F401  (the root check of the fixtures)


def _rule(rule):
    return sv._seccomp_rule() if rule[0] == "seccomp" else rule


def minimal(rule):
    """The smallest valid value of a rule (intermediate objects of a case)."""
    rule = _rule(rule)
    kind = rule[0]
    if kind == "int":
        return max(rule[1], min(rule[2], 1))
    if kind in ("str", "option"):
        return "x"
    if kind == "abs":
        return "/x"
    if kind == "bool":
        return False
    if kind == "enum":
        return sorted(rule[1])[0]
    if kind == "arr":
        return []
    if kind == "map":
        return {}
    if kind == "obj":
        return {name: minimal(rule[1][name]) for name in rule[2]}
    if kind == "weight":
        return 10
    if kind == "access":
        return "rwm"
    return None


def bad_values(rule):
    kind = rule[0]
    wrong_type = [("string", "lots"), ("object", {"a": 1})] if kind not in ("str", "option") \
        else [("number", 5), ("array", ["x"])]
    if kind == "int":
        out = [("string", "lots"), ("fraction", 1.5), ("boolean", True), ("2**70", 2**70)]
        if rule[1] > -2**63:
            out.append(("below minimum", rule[1] - 1))
        if rule[2] < 2**64 - 1:
            out.append(("above maximum", rule[2] + 1))
        return out
    if kind in ("str", "option"):
        return wrong_type + ([("two options", "ro,nosuid")] if kind == "option" else [])
    if kind == "abs":
        return [("relative path", "relative/path"), ("number", 5)]
    if kind == "bool":
        return [("string", "yes"), ("number", 1)]
    if kind == "enum":
        return [("unknown name", "BOGUS_VALUE"), ("number", 5)]
    if kind in ("arr", "map", "obj"):
        return [("string", "lots"), ("number", 7)] + \
            ([("array", [])] if kind != "arr" else [("object", {})])
    if kind == "weight":
        return [("below minimum", 5), ("above maximum", 1001), ("string", "lots")]
    if kind == "access":
        return [("unknown letter", "rwx"), ("number", 5)]
    return []


def cases(rule, path=()):
    """(path, label, value-or-MISSING) for every field below `rule`."""
    rule = _rule(rule)
    if path:
        for label, value in bad_values(rule):
            yield path, label, value
    kind = rule[0]
    if kind == "obj":
        for name, sub in sorted(rule[1].items()):
            yield from cases(sub, path + (name,))
        for name in rule[2]:
            yield path + (name,), "missing", MISSING
    elif kind == "arr":
        yield from cases(rule[1], path + (0,))
    elif kind == "map":
        yield from cases(rule[1], path + ("k",))


MISSING = object()


def build(base, path, value):
    """base with the field at `path` set to value (or removed), creating the
    intermediate objects and array items with their smallest valid values."""
    doc = copy.deepcopy(base)
    node, rule = doc, _rule(sv.CONFIG)
    for step in path[:-1]:
        kind = rule[0]
        if kind == "obj":
            rule = _rule(rule[1][step])
            if not isinstance(node.get(step), (dict, list)):
                node[step] = minimal(rule)
            node = node[step]
        elif kind == "arr":
            rule = _rule(rule[1])
            if not node:
                node.append(minimal(rule))
            node = node[0]
        else:  # map
            rule = _rule(rule[1])
            node = node.setdefault(step, minimal(rule))
    last = path[-1]
    if value is MISSING:
        if isinstance(node, dict):
            node.pop(last, None)
    elif isinstance(node, list):
        if node:
            node[0] = value
        else:
            node.append(value)
    else:
        node[last] = value
    return doc


def dotted(path):
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _base(rootfs):
    from minirun.spec import default_spec

    config = default_spec()
    config["process"].update(terminal=False, args=["true"])
    config["root"] = {"path": rootfs, "readonly": True}
    return config


ALL_CASES = list(cases(sv.CONFIG))


def _leftovers(root, cid, rootfs=None):
    """State dir, cgroup dirs (every hierarchy) and mounts on the rootfs of ours."""
    left = []
    state = [n for n in os.listdir(root) if not n.startswith(".")] if os.path.isdir(root) else []
    if state:  # (a dot-name, such as the .seccomp cache, is the runtime's own)
        left.append(f"state {state}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if fields[fields.index("-") + 1] in ("cgroup", "cgroup2") and \
                    os.path.exists(os.path.join(point, "minirun", cid)):
                left.append(f"cgroup {point}/minirun/{cid}")
            if rootfs and (point == rootfs or point.startswith(rootfs + "/")):
                left.append(f"mount {point}")
    return left


def test_every_schema_field_is_checked_before_any_side_effect(tmp_path, demo_rootfs):
    """In-process through the library's create (what the CLI calls)."""
    from minirun.runtime.create import create

    assert len(ALL_CASES) > 300  # the table covers the schema, not a handful of fields
    base = _base(demo_rootfs)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    root = str(tmp_path / "state")
    cid = "v" + uuid.uuid4().hex[:10]
    failures = []
    for path, label, value in ALL_CASES:
        with open(bundle / "config.json", "w") as f:
            json.dump(build(base, path, value), f)
        name = dotted(path)
        try:
            create(root, cid, str(bundle)).close()
        except MinirunError as e:
            message = str(e)
            if "\n" in message or (name not in message and str(path[-1]) not in message):
                failures.append(f"{name} ({label}): unclear message {message!r}")
        except Exception as e:  # the CLI would print a traceback
            failures.append(f"{name} ({label}): {type(e).__name__}: {e}")
        else:
            failures.append(f"{name} ({label}): accepted")
            from minirun.runtime.delete import delete

            delete(root, cid, force=True)
        left = _leftovers(root, cid, demo_rootfs)
        if left:
            failures.append(f"{name} ({label}): left {left}")
            break
    print(f"{len(ALL_CASES)} bad inputs, {len(failures)} failures")
    assert not failures, "\n".join(failures[:40])


CLI_CASES = [
    (("linux", "resources", "memory", "limit"), "lots"),
    (("linux", "resources", "memory", "limit"), 2**70),
    (("process", "user", "uid"), -1),
    (("process", "user", "gid"), 2**32),
    (("linux", "namespaces", 0, "type"), "bogus"),
    (("process", "rlimits", 0, "type"), "RLIMIT_BOGUS"),
    (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_NOPE"}),
    (("linux", "maskedPaths", 0), "proc/kcore"),
    (("mounts", 0, "options", 0), "ro,suid"),
    (("process", "cwd"), "tmp"),
    (("process", "cwd"), "two\nlines"),  # shown escaped: the error stays one line
    (("mounts", 0, "options", 0), "nul\u0000inside"),
    (("root",), MISSING),
]


@pytest.mark.parametrize("path,value", CLI_CASES, ids=[dotted(p) for p, _ in CLI_CASES])
def test_cli_one_line_exit_1_nothing_left(runtime, bundle, cid, path, value):
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        json.dump(build(bundle.config, path, value), f)
    out = runtime("create", "--bundle", bundle.path, cid, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and dotted(path).split("[")[0] in lines[0], lines
    assert runtime.ids() == [] and _leftovers(runtime.root, cid) == []


@pytest.mark.parametrize("resources", [{"memory": {"limit": "lots"}},
                                       {"memory": {"limit": 2**70}},
                                       {"pids": {"limit": 1.5}},
                                       {"cpu": {"shares": -2}}],
                         ids=["string", "2**70", "fraction", "negative-shares"])
def test_update_checks_resources_before_writing(runtime, bundle, cid, resources):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    with open(os.path.join(runtime.root, cid, "state.json")) as f:
        memory_dir = json.load(f)["cgroup"].get("dirs", {}).get("memory")
    before = open(os.path.join(memory_dir, "memory.limit_in_bytes")).read() \
        if memory_dir else None
    out = runtime("update", "-r", "-", cid, check=False, input=json.dumps(resources))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "resources: " in out.stderr
    if memory_dir:
        assert open(os.path.join(memory_dir, "memory.limit_in_bytes")).read() == before


@pytest.mark.parametrize("field,value", [("user", {"uid": -1, "gid": 0}), ("cwd", "relative"),
                                         ("rlimits", [{"type": "RLIMIT_NOPE", "soft": 1,
                                                       "hard": 1}])],
                         ids=["uid", "cwd", "rlimit"])
def test_exec_process_file_is_checked(runtime, bundle, cid, tmp_path, field, value):
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    process = dict(bundle.process, args=["true"], **{field: value})
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    out = runtime("exec", "--process", path, cid, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], lines
    assert runtime.state(cid)["status"] == "running"
