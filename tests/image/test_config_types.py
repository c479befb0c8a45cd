"""A wrongly typed image config field gives one line naming it, never a
traceback (or a Cmd string run letter by letter)."""
import pytest

from minirun.errors import MinirunError
from minirun.image.bundle import check_image_config, image_spec

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

GOOD = {"os": "linux", "architecture": "amd64",
        "config": {"Cmd": ["sh"], "Env": ["A=1"], "ExposedPorts": {"80/tcp": {}},
                   "Labels": {"k": "v"}, "Volumes": {"/data": {}}, "WorkingDir": "/w",
                   "User": "0", "StopSignal": "SIGTERM",
                   "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
        "rootfs": {"type": "layers", "diff_ids": []}}

BAD = [  # (where, value, what the line says)
    ("Env", 5, "config.Env must be an array of strings, not a number (5)"),
    ("Env", ["A=1", 2], "config.Env must be an array of strings, not an array"),
    ("Cmd", 5, "config.Cmd must be an array of strings, not a number (5)"),
    ("Entrypoint", {"a": 1}, "config.Entrypoint must be an array of strings, not an object"),
    ("ExposedPorts", [], "config.ExposedPorts must be an object, not an array ([])"),
    ("Volumes", ["/data"], "config.Volumes must be an object, not an array"),
    ("Labels", {"k": 1}, "config.Labels must be an object of strings, not an object"),
    ("Labels", "k=v", "config.Labels must be an object of strings, not a string"),
    ("WorkingDir", 7, "config.WorkingDir must be a string, not a number (7)"),
    ("User", True, "config.User must be a string, not a boolean (true)"),
    ("StopSignal", 9, "config.StopSignal must be a string, not a number (9)"),
    ("Healthcheck", ["CMD"], "config.Healthcheck must be an object, not an array"),
    ("Healthcheck", {"Test": "true"}, "config.Healthcheck.Test must be an array of strings"),
    ("Healthcheck", {"Test": ["CMD", "true"], "Interval": "1s"},
     'config.Healthcheck.Interval must be an integer, not "1s"'),
    ("config", ["Cmd"], "config must be an object, not an array"),
    ("os", 1, "os must be a string, not a number (1)"),
    ("created", {}, "created must be a string, not an object ({})"),
]


def with_field(where, value):
    doc = {**GOOD, "config": dict(GOOD["config"])}
    if where in ("config", "os", "created"):
        doc[where] = value
    else:
        doc["config"][where] = value
    return doc


@pytest.mark.parametrize("where,value,message", BAD, ids=[f"{w}={v!r}" for w, v, _ in BAD])
def test_wrong_type_is_one_line(where, value, message):
    with pytest.raises(MinirunError) as info:
        image_spec(with_field(where, value), args=["true"])
    text = str(info.value)
    assert text == f"invalid image config: {message}" or \
        text.startswith(f"invalid image config: {message}"), text
    assert "\n" not in text


def test_null_fields_are_absent():
    doc = with_field("Cmd", None)
    doc["config"].update(Env=None, ExposedPorts=None, Labels=None, Healthcheck=None)
    check_image_config(doc)
    assert image_spec(doc, args=["true"])["process"]["args"] == ["true"]


def test_a_string_cmd_or_entrypoint_is_a_list_of_one_as_docker_reads_it():
    doc = with_field("Cmd", "ls -l")
    assert image_spec(doc)["process"]["args"] == ["ls -l"]
    doc = with_field("Entrypoint", "/bin/app")
    assert image_spec(doc)["process"]["args"] == ["/bin/app", "sh"]


def test_good_config_makes_a_spec():
    spec = image_spec(GOOD)
    assert spec["process"]["args"] == ["sh"] and spec["process"]["cwd"] == "/w"
    assert "A=1" in spec["process"]["env"]


def test_not_an_object():
    with pytest.raises(MinirunError, match="invalid image config: not a JSON object"):
        check_image_config([])
