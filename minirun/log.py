"""Error and debug output: one line on stderr, and runc-style lines in --log.

Engines read the --log file: containerd's shim takes the msg of the last
error line, podman json-decodes the whole file, so on failure the file holds
exactly one JSON object per line and the file exists even if nothing else
happened (it is opened on every call).
"""
import sys
import time

_log_file = None
_json = False
_debug = False


def configure(path, fmt="text", debug=False):
    global _log_file, _json, _debug
    _json = fmt == "json"
    _debug = debug
    if path:
        try:
            _log_file = open(path, "a", buffering=1)
        except OSError as e:
            print(f"minirun: cannot open log file {path}: {e.strerror}", file=sys.stderr)


def _write(level, msg):
    if _log_file is None:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _json:
        from minirun import jsonio

        line = jsonio.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg="{msg}"'
    try:
        _log_file.write(line + "\n")
    except OSError:
        pass


def error(msg, echo=True):
    if echo:
        print(f"minirun: {msg}", file=sys.stderr)
    _write("error", msg)


def warning(msg):
    print(f"minirun: warning: {msg}", file=sys.stderr)
    _write("warning", msg)


def debug(msg):
    if _debug:
        print(f"minirun: debug: {msg}", file=sys.stderr)
        _write("debug", msg)
