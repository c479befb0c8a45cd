"""Pure-logic checks of config validation and of the state file check (no root)."""
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minirun import spec, spec_validate
from minirun.errors import ConfigError
from minirun.runtime.state import state_problem

pytestmark = pytest.mark.unprivileged


def _base():
    config = spec.default_spec()
    config["process"].update(terminal=False, args=["true"])
    return config


def _paths(rule, path=()):
    """Every field path of the schema (arrays: their first item; maps: key "k")."""
    rule = spec_validate._seccomp_rule() if rule[0] == "seccomp" else rule
    if path:
        yield path, rule
    if rule[0] == "obj":
        for name, sub in rule[1].items():
            yield from _paths(sub, path + (name,))
    elif rule[0] == "arr":
        yield from _paths(rule[1], path + (0,))
    elif rule[0] == "map":
        yield from _paths(rule[1], path + ("k",))


PATHS = [p for p, _ in _paths(spec_validate.CONFIG)]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                   max_size=3),
    max_leaves=8)


def _put(doc, path, value):
    node = doc
    for step in path[:-1]:
        if isinstance(node, list):
            if not node or not isinstance(node[0], (dict, list)):
                node[:1] = [{}]
            node = node[0]
        else:
            if not isinstance(node.get(step), (dict, list)):
                node[step] = [] if isinstance(path[path.index(step) + 1], int) else {}
            node = node[step]
    if isinstance(node, list):
        node[:1] = [value]
    else:
        node[path[-1]] = value


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JSON)
def test_any_value_anywhere_is_accepted_or_one_clear_error(path, value):
    config = copy.deepcopy(_base())
    _put(config, path, value)
    try:
        spec.validate(config)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)


@pytest.mark.parametrize("path,value,message", [
    (("linux", "resources", "memory", "limit"), "lots",
     'config.json: linux.resources.memory.limit: "lots" is not an integer'),
    (("linux", "resources", "memory", "limit"), 2**70,
     "config.json: linux.resources.memory.limit: 1180591620717411303424 is out of range "
     "(-9223372036854775808 to 9223372036854775807)"),
    (("process", "user", "uid"), -1,
     "config.json: process.user.uid: -1 is out of range (0 to 4294967295)"),
    (("hooks", "prestart", 0, "path"), "hook.sh",
     'config.json: hooks.prestart[0].path: "hook.sh" is not an absolute path'),
])
def test_messages_name_the_field_and_the_value(path, value, message):
    config = _base()
    _put(config, path, value)
    with pytest.raises(ConfigError) as err:
        spec.validate(config)
    assert str(err.value) == message


def test_default_and_full_configs_pass():
    spec.validate(_base())
    rootless = spec.default_spec(rootless=True)
    rootless["process"]["terminal"] = False
    spec.validate(rootless)


@pytest.mark.parametrize("data,problem", [
    ([], "expected an object"),
    ({"id": "other", "status": "running"}, "id is 'other'"),
    ({"id": "c", "status": "gone"}, "unknown status"),
    ({"id": "c", "status": "running", "pid": "12"}, "pid is '12'"),
    ({"id": "c", "status": "running", "pid": True}, "pid is True"),
    ({"id": "c", "status": "running", "bundle": 5}, "bundle is 5"),
    ({"id": "c", "status": "running", "cgroup": {"path": "/x"}}, "cgroup is"),
    ({"id": "c", "status": "running", "host_mounts": {"path": "/x", "below": "1"}},
     "host_mounts is"),
])
def test_state_problem_names_what_is_wrong(data, problem):
    assert problem in state_problem(data, "c")


def test_state_problem_accepts_a_real_state():
    assert state_problem({"id": "c", "status": "created", "pid": 12, "pid_start": 345,
                          "bundle": "/b", "rootfs": "/b/rootfs", "created": "now",
                          "annotations": {}, "cgroup": {"version": "v1", "path": "/m/c"},
                          "host_mounts": None}, "c") is None
