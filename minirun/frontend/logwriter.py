"""The container log, in Docker's json-file format (stdlib only: the monitor writes it)."""
import json
import os

from minirun.frontend import recordfile
from minirun.frontend.monitor_proto import log

PARTIAL_LINE = 16 << 10        # Docker's json-file splits lines longer than this


class LogWriter:
    """Docker's json-file format: {"log": "...\\n", "stream": "stdout", "time": "..."}
    per line; the file is rotated to .1, .2, ... when it reaches max_size."""

    def __init__(self, path, max_size, max_files):
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.partial = {"stdout": b"", "stderr": b""}
        self.f = open(path, "ab", buffering=0)
        self.size = self.f.tell()

    def write(self, stream, data):
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        out = []
        for line in lines:
            while len(line) >= PARTIAL_LINE:
                out.append(line[:PARTIAL_LINE])
                line = line[PARTIAL_LINE:]
            out.append(line + b"\n")
        while len(self.partial[stream]) >= PARTIAL_LINE:
            out.append(self.partial[stream][:PARTIAL_LINE])
            self.partial[stream] = self.partial[stream][PARTIAL_LINE:]
        if out:
            self._emit(stream, out)

    def flush(self):
        for stream, data in self.partial.items():
            if data:
                self.partial[stream] = b""
                self._emit(stream, [data])

    def _emit(self, stream, chunks):
        now = recordfile.timestamp()
        batch = bytearray()
        for chunk in chunks:
            line = json.dumps({"log": chunk.decode("utf-8", "replace"), "stream": stream,
                               "time": now}).encode() + b"\n"
            if batch and self.size + len(batch) + len(line) > self.max_size:
                self._write(batch)
                batch.clear()
            if self.size and self.size + len(line) > self.max_size:
                self._rotate()
            batch += line
        self._write(batch)

    def _write(self, data):
        try:
            self.f.write(data)
        except OSError as e:
            log(f"writing {self.path}: {e}")
            return
        self.size += len(data)

    def _rotate(self):
        self.f.close()
        try:
            if self.max_files <= 1:
                os.unlink(self.path)
            else:
                for n in range(self.max_files - 1, 0, -1):
                    src = self.path if n == 1 else f"{self.path}.{n - 1}"
                    if os.path.exists(src):
                        os.replace(src, f"{self.path}.{n}")
        except OSError as e:
            log(f"rotating {self.path}: {e}")
        self.f = open(self.path, "ab", buffering=0)
        self.size = self.f.tell()

    def close(self):
        self.flush()
        self.f.close()
