"""The test's protobuf codec (pure): wire format and the CRI messages it writes."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cri_proto import CRI, Codec, decode_varint, encode_varint, fields

pytestmark = pytest.mark.unprivileged


def test_varint_known_values():
    # From the protobuf encoding guide: 1, 150, 300 and a negative int32.
    assert encode_varint(1) == b"\x01"
    assert encode_varint(150) == b"\x96\x01"
    assert encode_varint(300) == b"\xac\x02"
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"
    assert decode_varint(b"\x96\x01", 0) == (150, 2)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_varint_round_trip(n):
    data = encode_varint(n)
    assert decode_varint(data + b"\x00", 0) == (n, len(data))


def test_truncated_input_is_an_error():
    with pytest.raises(ValueError):
        decode_varint(b"\x96", 0)
    with pytest.raises(ValueError):
        list(fields(b"\x0a\x05ab"))   # field 1, 5 bytes announced, 2 present


def test_known_encoding_of_a_nested_message():
    # ContainerMetadata{name: "a", attempt: 2} = 0a 01 61 10 02, inside field 1 of ContainerConfig
    data = CRI.encode("ContainerConfig", {"metadata": {"name": "a", "attempt": 2}})
    assert data == bytes.fromhex("0a05" "0a0161" "1002")


def test_map_entries_are_messages_with_key_1_and_value_2():
    data = CRI.encode("ImageSpec", {"annotations": {"k": "v"}})
    assert data == bytes.fromhex("1206" "0a016b" "120176")
    assert CRI.decode("ImageSpec", data) == {"image": "", "annotations": {"k": "v"}}


def test_round_trip_of_a_sandbox_config_with_defaults_filled_in():
    msg = {"config": {"metadata": {"name": "pod", "uid": "u1", "namespace": "default"},
                      "hostname": "pod", "log_directory": "/tmp/logs",
                      "labels": {"app": "web", "tier": "x"},
                      "linux": {"cgroup_parent": "/kubepods",
                                "security_context": {"namespace_options": {"network": 0,
                                                                           "pid": 1}}}},
           "runtime_handler": "minirun"}
    back = CRI.decode("RunPodSandboxRequest", CRI.encode("RunPodSandboxRequest", msg))
    assert back["runtime_handler"] == "minirun"
    cfg = back["config"]
    assert cfg["metadata"] == {"name": "pod", "uid": "u1", "namespace": "default", "attempt": 0}
    assert cfg["labels"] == {"app": "web", "tier": "x"}
    assert cfg["annotations"] == {}
    assert cfg["linux"]["security_context"]["namespace_options"] == {
        "network": 0, "pid": 1, "ipc": 0, "target_id": ""}


def test_negative_int32_and_bytes_decode():
    data = CRI.encode("ExecSyncResponse", {"stdout": b"\x00\xffhi", "exit_code": -2})
    assert CRI.decode("ExecSyncResponse", data) == {"stdout": b"\x00\xffhi", "stderr": b"",
                                                    "exit_code": -2}


def test_unknown_fields_are_skipped_and_packed_numbers_read():
    codec = Codec({"M": {"n": (1, "int64", True), "s": (3, "string", False)}})
    unknown = bytes.fromhex("1005") + bytes.fromhex("2d01020304") + bytes.fromhex("210102030405060708")
    packed = bytes.fromhex("0a03" "01" "02" "7f")
    data = unknown + packed + bytes.fromhex("1a026f6b")
    assert codec.decode("M", data) == {"n": [1, 2, 127], "s": "ok"}


def test_repeated_strings_and_messages():
    msg = {"command": ["sh", "-c"], "args": ["echo hi"],
           "envs": [{"key": "A", "value": "1"}, {"key": "B", "value": ""}]}
    back = CRI.decode("ContainerConfig", CRI.encode("ContainerConfig", msg))
    assert back["command"] == ["sh", "-c"] and back["args"] == ["echo hi"]
    assert back["envs"] == [{"key": "A", "value": "1"}, {"key": "B", "value": ""}]


def test_an_unknown_field_name_is_refused_when_encoding():
    with pytest.raises(KeyError):
        CRI.encode("VersionRequest", {"versoin": "v1"})
