"""What `kube play` made, on disk: the truth `kube down` and the controller work from.

    <store>/kube/state.json   {"objects": {key: object}, "pods": {key: pod},
                               "services": {key: {"clusterIP", "endpoints": [...]}}}
    <store>/kube/lock         flock held by every reader-modifier (play, down, controller)
    <store>/kube/pods/<ns>_<pod>/volumes/<name>   emptyDir, configMap and secret volumes
    <store>/kube/controller.pid   "<pid> <start time>" of the controller process

Keys are "Kind/namespace/name" for objects and "namespace/name" for pods and
services.  A pod is recorded before its containers are made (with their ids
filled in as they appear), so a crash leaves nothing that `kube down` cannot find.
"""
import contextlib
import fcntl
import json
import os
import shutil


def key(kind, namespace, name):
    return f"{kind}/{namespace}/{name}"


class State:
    def __init__(self, fe):
        self.fe = fe
        self.dir = os.path.join(fe.store_root, "kube")
        self.path = os.path.join(self.dir, "state.json")
        self.pid_path = os.path.join(self.dir, "controller.pid")
        self.data = None

    def pod_dir(self, namespace, name):
        return os.path.join(self.dir, "pods", f"{namespace}_{name}")

    @contextlib.contextmanager
    def locked(self):
        """Hold the lock; self.data is the state, written back (atomically) on success."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.data = self._read()
            try:
                yield self.data
            finally:
                # Written even when a step failed: what was made is recorded.
                if self.empty(self.data):
                    self._clear()
                else:
                    self._write(self.data)
        finally:
            self.data = None
            os.close(fd)

    def _read(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        for section in ("objects", "pods", "services"):
            data.setdefault(section, {})
        return data

    def _write(self, data):
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def snapshot(self):
        """A read without the lock (rename makes it consistent), for `kube ps`-like views."""
        return self._read()

    @staticmethod
    def empty(data):
        return not (data["objects"] or data["pods"] or data["services"])

    def _clear(self):
        """Nothing is left: no state file, no pod directories (the lock file stays:
        removing it would let two processes hold "the" lock on different files)."""
        shutil.rmtree(os.path.join(self.dir, "pods"), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
