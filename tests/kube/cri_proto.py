"""Just enough protocol buffers for the CRI test: the wire format (varints,
length-delimited fields, nested messages, maps, packed repeated numbers) and
the few runtime.v1 messages the test sends and reads, with the field numbers
of kubernetes/cri-api's pkg/apis/runtime/v1/api.proto.

A message is a dict {field name: value}; a schema maps each field name to
(number, type, repeated).  Types: "string", "bytes", "bool", "int32",
"int64", "uint32", "uint64", "enum", ("map", key type, value type) or the
name of another message.  Unknown fields are skipped when decoding, as
protobuf does; absent fields decode to their proto3 defaults.
"""
import struct

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_SCALAR_DEFAULTS = {"string": "", "bytes": b"", "bool": False, "int32": 0, "int64": 0,
                    "uint32": 0, "uint64": 0, "enum": 0}


# --- wire format ------------------------------------------------------------------------
def encode_varint(n):
    """Unsigned LEB128; negative numbers as their 64-bit two's complement (10 bytes),
    which is how int32 and int64 fields carry them."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data, pos):
    """(value, next position); raises ValueError on a truncated or overlong varint."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _signed(value, bits):
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = (value + (1 << 31)) % (1 << 32) - (1 << 31)
    return value


def fields(data):
    """Yield (number, wire type, raw value) for each field of an encoded message:
    an int for VARINT/I64/I32, bytes for LEN."""
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == VARINT:
            value, pos = decode_varint(data, pos)
        elif wire == I64:
            if pos + 8 > len(data):
                raise ValueError("truncated fixed64")
            value, = struct.unpack_from("<Q", data, pos)
            pos += 8
        elif wire == I32:
            if pos + 4 > len(data):
                raise ValueError("truncated fixed32")
            value, = struct.unpack_from("<I", data, pos)
            pos += 4
        elif wire == LEN:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            value = bytes(data[pos:pos + length])
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _key(number, wire):
    return encode_varint(number << 3 | wire)


# --- schema-driven encode / decode ------------------------------------------------------
class Codec:
    def __init__(self, schemas):
        self.schemas = schemas

    def encode(self, message, value):
        schema = self.schemas[message]
        out = bytearray()
        for name, v in value.items():
            if name not in schema:
                raise KeyError(f"{message} has no field {name!r}")
            number, kind, repeated = schema[name]
            if isinstance(kind, tuple):         # map<K, V>: repeated {1: key, 2: value}
                for k in sorted(v):
                    entry = self._scalar_field(1, kind[1], k) + self._field(2, kind[2], v[k])
                    out += _key(number, LEN) + encode_varint(len(entry)) + entry
            elif repeated:
                for item in v:
                    out += self._field(number, kind, item)
            else:
                out += self._field(number, kind, v)
        return bytes(out)

    def _field(self, number, kind, v):
        if kind in _SCALAR_DEFAULTS:
            return self._scalar_field(number, kind, v)
        body = self.encode(kind, v)
        return _key(number, LEN) + encode_varint(len(body)) + body

    @staticmethod
    def _scalar_field(number, kind, v):
        if kind in ("string", "bytes"):
            data = v.encode() if isinstance(v, str) else bytes(v)
            return _key(number, LEN) + encode_varint(len(data)) + data
        return _key(number, VARINT) + encode_varint(int(v))

    def decode(self, message, data):
        schema = self.schemas[message]
        by_number = {spec[0]: (name, spec) for name, spec in schema.items()}
        out = {}
        for name, (number, kind, repeated) in schema.items():
            if isinstance(kind, tuple):
                out[name] = {}
            elif repeated:
                out[name] = []
            elif kind in _SCALAR_DEFAULTS:
                out[name] = _SCALAR_DEFAULTS[kind]
            else:
                out[name] = None
        for number, wire, raw in fields(data):
            if number not in by_number:
                continue
            name, (_, kind, repeated) = by_number[number]
            if isinstance(kind, tuple):
                entry = {1: _SCALAR_DEFAULTS.get(kind[1]), 2: None}
                for n, w, r in fields(raw):
                    if n in (1, 2):
                        entry[n] = self._value(kind[n], w, r)
                value = entry[2] if entry[2] is not None else _SCALAR_DEFAULTS.get(kind[2])
                out[name][entry[1]] = value
            elif repeated and wire == LEN and kind in ("int32", "int64", "uint32", "uint64",
                                                       "bool", "enum"):
                pos = 0                            # packed repeated numbers
                while pos < len(raw):
                    v, pos = decode_varint(raw, pos)
                    out[name].append(self._value(kind, VARINT, v))
            elif repeated:
                out[name].append(self._value(kind, wire, raw))
            else:
                out[name] = self._value(kind, wire, raw)   # the last one wins
        return out

    def _value(self, kind, wire, raw):
        if kind == "string":
            return raw.decode()
        if kind == "bytes":
            return raw
        if kind == "bool":
            return bool(raw)
        if kind in ("int32", "enum"):
            return _signed(raw, 32)
        if kind == "int64":
            return _signed(raw, 64)
        if kind in ("uint32", "uint64"):
            return raw
        return self.decode(kind, raw)


def _s(number, kind="string", repeated=False):
    return (number, kind, repeated)


STR_MAP = ("map", "string", "string")

# runtime.v1 (kubernetes/cri-api pkg/apis/runtime/v1/api.proto): only what the test uses.
CRI = Codec({
    "VersionRequest": {"version": _s(1)},
    "VersionResponse": {"version": _s(1), "runtime_name": _s(2), "runtime_version": _s(3),
                        "runtime_api_version": _s(4)},
    "PodSandboxMetadata": {"name": _s(1), "uid": _s(2), "namespace": _s(3),
                           "attempt": _s(4, "uint32")},
    "NamespaceOption": {"network": _s(1, "enum"), "pid": _s(2, "enum"), "ipc": _s(3, "enum"),
                        "target_id": _s(4)},
    "LinuxSandboxSecurityContext": {"namespace_options": _s(1, "NamespaceOption"),
                                    "privileged": _s(6, "bool")},
    "LinuxPodSandboxConfig": {"cgroup_parent": _s(1),
                              "security_context": _s(2, "LinuxSandboxSecurityContext"),
                              "sysctls": _s(3, STR_MAP)},
    "PodSandboxConfig": {"metadata": _s(1, "PodSandboxMetadata"), "hostname": _s(2),
                         "log_directory": _s(3), "labels": _s(6, STR_MAP),
                         "annotations": _s(7, STR_MAP), "linux": _s(8, "LinuxPodSandboxConfig")},
    "RunPodSandboxRequest": {"config": _s(1, "PodSandboxConfig"), "runtime_handler": _s(2)},
    "RunPodSandboxResponse": {"pod_sandbox_id": _s(1)},
    "PodSandboxIdRequest": {"pod_sandbox_id": _s(1)},   # Stop/RemovePodSandboxRequest
    "Empty": {},
    "ImageSpec": {"image": _s(1), "annotations": _s(2, STR_MAP)},
    "PullImageRequest": {"image": _s(1, "ImageSpec"), "sandbox_config": _s(3, "PodSandboxConfig")},
    "PullImageResponse": {"image_ref": _s(1)},
    "KeyValue": {"key": _s(1), "value": _s(2)},
    "ContainerMetadata": {"name": _s(1), "attempt": _s(2, "uint32")},
    "Mount": {"container_path": _s(1), "host_path": _s(2), "readonly": _s(3, "bool")},
    "LinuxContainerSecurityContext": {"namespace_options": _s(3, "NamespaceOption")},
    "LinuxContainerConfig": {"security_context": _s(2, "LinuxContainerSecurityContext")},
    "ContainerConfig": {"metadata": _s(1, "ContainerMetadata"), "image": _s(2, "ImageSpec"),
                        "command": _s(3, repeated=True), "args": _s(4, repeated=True),
                        "working_dir": _s(5), "envs": _s(6, "KeyValue", True),
                        "labels": _s(9, STR_MAP), "annotations": _s(10, STR_MAP),
                        "log_path": _s(11), "linux": _s(15, "LinuxContainerConfig")},
    "CreateContainerRequest": {"pod_sandbox_id": _s(1), "config": _s(2, "ContainerConfig"),
                               "sandbox_config": _s(3, "PodSandboxConfig")},
    "CreateContainerResponse": {"container_id": _s(1)},
    "ContainerIdRequest": {"container_id": _s(1)},      # Start/RemoveContainerRequest
    "StopContainerRequest": {"container_id": _s(1), "timeout": _s(2, "int64")},
    "ContainerStatusRequest": {"container_id": _s(1), "verbose": _s(2, "bool")},
    "ContainerStatus": {"id": _s(1), "metadata": _s(2, "ContainerMetadata"),
                        "state": _s(3, "enum"), "created_at": _s(4, "int64"),
                        "started_at": _s(5, "int64"), "finished_at": _s(6, "int64"),
                        "exit_code": _s(7, "int32"), "image": _s(8, "ImageSpec"),
                        "image_ref": _s(9), "reason": _s(10), "message": _s(11),
                        "labels": _s(12, STR_MAP), "annotations": _s(13, STR_MAP),
                        "log_path": _s(15)},
    "ContainerStatusResponse": {"status": _s(1, "ContainerStatus"), "info": _s(2, STR_MAP)},
    "ExecSyncRequest": {"container_id": _s(1), "cmd": _s(2, repeated=True),
                        "timeout": _s(3, "int64")},
    "ExecSyncResponse": {"stdout": _s(1, "bytes"), "stderr": _s(2, "bytes"),
                         "exit_code": _s(3, "int32")},
})

# NamespaceMode and ContainerState values
POD, CONTAINER, NODE = 0, 1, 2
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED = 0, 1, 2
