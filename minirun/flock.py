"""flock(2) on a lock file for the time of a with-block.

A class, not contextlib's decorator: contextlib pulls in collections and
functools, which `ps` and `pull` would pay for on every call."""
import fcntl
import os


class Flock:
    def __init__(self, path, mode=fcntl.LOCK_EX):
        self.path, self.mode = path, mode
        self.fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, self.mode)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = None
        return False
