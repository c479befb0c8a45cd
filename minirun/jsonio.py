"""JSON for the per-container verbs, through the C accelerator `_json` only.

`import json` costs more than starting the interpreter (it pulls in `re`,
and `re` pulls in `enum`): about 35 million instructions, paid by every
`create`, `start`, `state`, `kill` and `delete` an engine runs.  The standard
library's own fast paths are the C functions in `_json`; this module calls
them directly, with json's defaults (ensure_ascii, allow_nan, strict), so the
text read and written is exactly what `json.loads`/`json.dumps` give.

Errors are left to the standard library: when the C scanner rejects a
document, `loads` hands the same text to `json.loads`, which raises the usual
`json.JSONDecodeError` (a ValueError) with its usual message.
"""
import _json

_WHITESPACE = " \t\n\r"


class _Context:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__
    memo = None


_scan = _json.make_scanner(_Context())


def _unserializable(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# json.dumps(obj) with its defaults: ", " and ": " separators, no sorting.
_encode = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None,
                             ": ", ", ", False, False, True)


def loads(text):
    """json.loads(text) for str or UTF-8 bytes."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):  # SystemError: a bad object (3.11)
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json  # only on bad input: the standard message and exception

        return json.loads(text)
    return value


def load(f):
    return loads(f.read())


def dumps(obj, indent=None):
    """json.dumps(obj) (or json.dumps(obj, indent=N): runc's `state` output)."""
    if indent is None:
        return "".join(_encode(obj, 0))
    try:
        return _indented(obj, " " * indent, "\n")
    except _NotPlain:
        import json  # keys other than strings: json's own conversions

        return json.dumps(obj, indent=indent)


def dump(obj, f):
    f.write(dumps(obj))


class _NotPlain(Exception):
    pass


def _key(k):
    if not isinstance(k, str):
        raise _NotPlain
    return _json.encode_basestring_ascii(k)


def _indented(obj, step, newline):
    if isinstance(obj, dict) and obj:
        inner = newline + step
        items = [_key(k) + ": " + _indented(v, step, inner) for k, v in obj.items()]
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(obj, (list, tuple)) and obj:
        inner = newline + step
        items = [_indented(v, step, inner) for v in obj]
        return "[" + inner + ("," + inner).join(items) + newline + "]"
    return "".join(_encode(obj, 0))
