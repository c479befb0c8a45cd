"""minirun/image/httpwire.py, the registry client's HTTP/1.1, against a
scripted server on 127.0.0.1: framing (Content-Length, chunked, to the end of
the connection, none for HEAD/204), keep-alive reuse, a stale connection, a
short body, request bodies."""
import socket
import threading

import pytest

from minirun.image import httpwire

pytestmark = pytest.mark.unprivileged  # a loopback socket is all it needs


class Server:
    """Answers each request with the next scripted reply (bytes, or a
    callable(conn) for odd behaviour); records what it received."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += conn.recv(65536)
        self.requests.append((head.decode(), buf[:length]))
        return True, buf[length:]

    def _serve(self):
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while self.replies:
                    ok, buf = self._read_request(conn, buf)
                    if not ok:
                        break
                    reply = self.replies.pop(0)
                    if callable(reply):
                        if reply(conn) == "close":
                            break
                    else:
                        conn.sendall(reply)

    def close(self):
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def make(*replies):
        servers.append(Server(replies))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _get(conn, path="/", method="GET", body=None, headers=None):
    conn.request(method, path, body=body, headers=headers)
    return conn.getresponse()


def test_content_length_and_keep_alive(serve):
    s = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
              b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    conn = httpwire.Connection(s.host, 5)
    r = _get(conn, "/a")
    assert (r.status, r.reason, r.headers.get("x-A"), r.headers["Missing"]) == (200, "OK", "1", None)
    assert r.read() == b"hello" and r.read() == b""
    r = _get(conn, "/b")
    assert r.status == 404 and r.read() == b""
    assert s.connections == 1
    assert s.requests[0][0].startswith("GET /a HTTP/1.1\r\nHost: " + s.host)


def test_chunked_and_read_limits(serve):
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
    s = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
              b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn = httpwire.Connection(s.host, 5)
    r = _get(conn)
    assert r.read(3) == b"Wik" and r.read() == b"ipedia"
    assert _get(conn).read() == b"ok"
    assert s.connections == 1


def test_body_to_the_end_of_the_connection(serve):
    def reply(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 300000)
        return "close"
    s = serve(reply, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny")
    conn = httpwire.Connection(s.host, 5)
    assert _get(conn).read() == b"x" * 300000
    assert _get(conn).read() == b"y"  # a new connection
    assert s.connections == 2


def test_head_and_204_have_no_body(serve):
    s = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
              b"HTTP/1.1 204 No Content\r\n\r\n",
              b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    conn = httpwire.Connection(s.host, 5)
    r = _get(conn, method="HEAD")
    assert r.status == 200 and r.read() == b"" and r.headers.get("content-length") == "99"
    assert _get(conn).read() == b""
    assert _get(conn, method="PUT", body=b"abc").status == 201
    assert s.requests[2] == (s.requests[2][0], b"abc")
    assert "Content-Length: 3" in s.requests[2][0]
    assert s.connections == 1


def test_file_body_needs_a_length(serve):
    import io

    s = serve(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    conn = httpwire.Connection(s.host, 5)
    with pytest.raises(ValueError):
        conn.request("PUT", "/", body=io.BytesIO(b"data"))
    r = _get(conn, method="PUT", body=io.BytesIO(b"data" * 100000),
             headers={"Content-Length": "400000"})
    assert r.status == 201 and s.requests[0][1] == b"data" * 100000
    with pytest.raises(ValueError):
        conn.request("GET", "/", headers={"X": "a\r\nInjected: 1"})


def test_stale_connection_and_short_body(serve):
    def close_now(conn):
        return "close"

    def short(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        return "close"
    s = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close_now, short)
    conn = httpwire.Connection(s.host, 5)
    assert _get(conn).read() == b""
    with pytest.raises(httpwire.RemoteDisconnected):  # the keep-alive the server dropped
        _get(conn)
    assert isinstance(httpwire.RemoteDisconnected(), ConnectionResetError)
    conn.close()
    r = _get(conn)
    with pytest.raises(httpwire.IncompleteRead) as e:
        r.read()
    assert e.value.partial == b"abc" and e.value.expected == 7


@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_protocol_errors(serve, reply):
    s = serve(reply)
    conn = httpwire.Connection(s.host, 5)
    with pytest.raises(httpwire.HTTPException):
        _get(conn).read()


@pytest.mark.parametrize("host,expected", [("h", ("h", 80)), ("h:5000", ("h", 5000)),
                                           ("[::1]:5000", ("::1", 5000)), ("[::1]", ("::1", 80))])
def test_split_host(host, expected):
    assert httpwire.split_host(host, 80) == expected
