"""HTTP/1.1 for the registry client: one keep-alive connection, no `email`.

The standard `http.client` parses headers with the `email` package, and
importing it (with `email`, `socket`'s enums and `urllib.parse`) costs more
than a whole pull of a small image from a local registry.  The registry
protocol needs little of HTTP: requests with a bytes or file body of known
length, and responses framed by Content-Length, chunked encoding or the end
of the connection.  This module does exactly that, with http.client's
exception names and meanings, over the C `_socket` module for plain http
(TLS, when a registry needs it, imports `ssl` then).
"""
import _socket

_MAX_HEADER = 64 << 10
_MAX_LINE = 64 << 10
_RECV = 256 << 10
_SEND = 1 << 20


class HTTPException(Exception):
    """The peer broke the protocol (as http.client.HTTPException)."""


class RemoteDisconnected(ConnectionResetError, HTTPException):
    """The server closed the connection before answering (a stale keep-alive)."""


class IncompleteRead(HTTPException):
    def __init__(self, partial, expected):
        super().__init__(partial, expected)
        self.partial, self.expected = partial, expected

    def __str__(self):
        return f"IncompleteRead({len(self.partial)} bytes read, {self.expected} more expected)"


class Headers:
    """Response headers: case-insensitive get(), first value wins (as http.client)."""

    def __init__(self, items):
        self._items = items
        self._first = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name, default=None):
        return self._first.get(name.lower(), default)

    def __getitem__(self, name):
        return self._first.get(name.lower())

    def __contains__(self, name):
        return name.lower() in self._first

    def items(self):
        return list(self._items)


def _connect(host, port, timeout):
    """socket.create_connection() without importing `socket`."""
    error = None
    if host.isascii():
        host = host.encode()  # a str name would be encoded by importing the idna codec
    for family, kind, proto, _, addr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error or OSError(f"cannot resolve {host}")


def split_host(host, default_port):
    """'h:1', '[::1]:1', 'h' -> (name, port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, ""
    if port and not port.isdigit():
        raise HTTPException(f"nonnumeric port: {port!r}")
    return name, int(port) if port else default_port


class Connection:
    """One connection to host[:port]; reopened as needed (keep-alive)."""

    def __init__(self, host, timeout, tls_context=None):
        self.host = host
        self.name, self.port = split_host(host, 443 if tls_context else 80)
        self.timeout = timeout
        self.tls_context = tls_context
        self.sock = None
        self._response = None

    def _open(self):
        if self.tls_context is None:
            self.sock = _connect(self.name, self.port, self.timeout)
            return
        import socket

        raw = socket.create_connection((self.name, self.port), self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.name)
        except BaseException:
            raw.close()
            raise

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._response = None

    def request(self, method, path, body=None, headers=None):
        """Send one request.  body: bytes or a file object with read(n); a
        file body needs a Content-Length header."""
        if self._response is not None and not self._response.reusable():
            self.close()  # the last answer was not read to its end
        if self.sock is None:
            self._open()
        headers = dict(headers or {})
        names = {k.lower() for k in headers}
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"] if "host" not in names \
            else [f"{method} {path} HTTP/1.1"]
        if "accept-encoding" not in names:
            head.append("Accept-Encoding: identity")
        if isinstance(body, (bytes, bytearray, memoryview)) and "content-length" not in names:
            head.append(f"Content-Length: {len(body)}")
        elif body is None and method in ("POST", "PUT", "PATCH") and "content-length" not in names:
            head.append("Content-Length: 0")
        elif body is not None and not isinstance(body, (bytes, bytearray, memoryview)) \
                and "content-length" not in names:
            raise ValueError("a file body needs a Content-Length header")
        for k, v in headers.items():
            if "\r" in f"{k}{v}" or "\n" in f"{k}{v}":
                raise ValueError(f"invalid header {k!r}")
            head.append(f"{k}: {v}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self._method = method
        self._response = None
        if isinstance(body, (bytes, bytearray, memoryview)):
            self.sock.sendall(data + bytes(body) if len(body) < _SEND else data)
            if len(body) >= _SEND:
                self.sock.sendall(body)
        else:
            self.sock.sendall(data)
            if body is not None:
                while True:
                    chunk = body.read(_SEND)
                    if not chunk:
                        break
                    self.sock.sendall(chunk)

    def getresponse(self):
        self._response = Response(self, self._method)
        return self._response


class Response:
    """Status, headers, and the body through read()/readinto()."""

    def __init__(self, conn, method):
        self._conn, self._sock = conn, conn.sock
        self._buf = b""
        line = self._line()
        if not line:
            raise RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise HTTPException(f"bad status line {line[:80]!r}")
        while 100 <= int(code) < 200 and int(code) != 101:  # interim answers: skip
            self._read_headers()
            line = self._line()
            version, _, rest = line.partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not code.isdigit():
                raise HTTPException(f"bad status line {line[:80]!r}")
        self.status = int(code)
        self.reason = reason.decode("latin-1").strip()
        self.headers = Headers(self._read_headers())
        self._keep = version != b"HTTP/1.0" and \
            (self.headers.get("Connection") or "").lower() != "close"
        self._chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self._chunk_left = 0
        length = self.headers.get("Content-Length")
        if method == "HEAD" or self.status in (204, 304):
            self._left = 0
            self._chunked = False
        elif self._chunked:
            self._left = None
        elif length is not None:
            try:
                self._left = int(length)
            except ValueError:
                raise HTTPException(f"bad Content-Length {length!r}") from None
            if self._left < 0:
                raise HTTPException(f"bad Content-Length {length!r}")
        else:
            self._left = None   # until the server closes
            self._keep = False
        self._done = self._left == 0

    # framing
    def _fill(self):
        data = self._sock.recv(_RECV)
        self._buf += data
        return len(data)

    def _line(self):
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 2:]
                return line
            if len(self._buf) > _MAX_LINE:
                raise HTTPException("header line too long")
            if not self._fill():
                line, self._buf = self._buf, b""
                return line

    def _read_headers(self):
        items, total = [], 0
        while True:
            line = self._line()
            total += len(line)
            if total > _MAX_HEADER:
                raise HTTPException("headers too long")
            if not line:
                return items
            if line[:1] in (b" ", b"\t") and items:  # obsolete line folding
                name, value = items[-1]
                items[-1] = (name, value + " " + line.strip().decode("latin-1"))
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                raise HTTPException(f"bad header line {line[:80]!r}")
            items.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))

    def _raw_into(self, view):
        """Fill view from the buffer, else one recv; returns 0 at the end of the stream."""
        if self._buf:
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            self._buf = self._buf[n:]
            return n
        return self._sock.recv_into(view)

    def _next_chunk(self):
        """Position at the next chunk's data; False after the last chunk."""
        if self._chunk_left is None:
            return False
        line = self._line()
        size = line.split(b";", 1)[0].strip()
        try:
            self._chunk_left = int(size, 16)
        except ValueError:
            raise HTTPException(f"bad chunk size {line[:40]!r}") from None
        if self._chunk_left == 0:
            self._read_headers()  # trailers
            self._chunk_left = None
            return False
        return True

    def readinto(self, buf):
        """Read into buf; returns the byte count, 0 at the end of the body."""
        if self._done:
            return 0
        view = memoryview(buf)
        if self._chunked:
            if not self._chunk_left and not self._next_chunk():
                self._done = True
                return 0
            n = self._raw_into(view[:self._chunk_left])
            if not n:
                raise IncompleteRead(b"", self._chunk_left)
            self._chunk_left -= n
            if not self._chunk_left:
                self._line()  # the CRLF after a chunk's data
            return n
        if self._left is not None:
            view = view[:self._left]
        n = self._raw_into(view) if len(view) else 0
        if self._left is not None:
            if not n and self._left:
                self._keep = False
                raise IncompleteRead(b"", self._left)
            self._left -= n
            self._done = not self._left
        elif not n:
            self._done = True
        return n

    def read(self, amt=None):
        """The rest of the body, or at most amt bytes of it."""
        out = bytearray()
        buf = bytearray(_RECV)
        while amt is None or len(out) < amt:
            want = _RECV if amt is None else min(_RECV, amt - len(out))
            try:
                n = self.readinto(memoryview(buf)[:want])
            except IncompleteRead as e:
                raise IncompleteRead(bytes(out), e.expected) from None
            if not n:
                break
            out += buf[:n]
        return bytes(out)

    def reusable(self):
        """Read to its end on a keep-alive connection: the next request may follow."""
        return self._done and self._keep and not self._buf
