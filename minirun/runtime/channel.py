"""A message channel between minirun and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each send() is one
JSON object; a closed peer reads as None.  Both ends are close-on-exec, so
a successful execve inside the container is seen by the parent as EOF.
"""
import json
import socket


class Channel:
    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def pair(cls):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, **msg):
        self.sock.send(json.dumps(msg).encode())

    def recv(self):
        data = self.sock.recv(65536)
        return json.loads(data) if data else None

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()
