"""What pull and push share around the wire: a progress line and bounded
parallel work.  Bare `_thread`: `threading` would import functools and
collections for a join, milliseconds a small pull cannot spare."""
import _thread
import sys
import time


class Progress:
    """One status line on stderr (only on a terminal)."""

    def __init__(self, title, total, stream=sys.stderr):
        self.title, self.total, self.done = title, total, 0
        self.stream = stream
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self._lock = _thread.allocate_lock()
        self._last = 0.0

    def add(self, n):
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self._last > 0.1:
                self._last = now
                self._draw()

    def _draw(self):
        width = 30
        frac = self.done / self.total if self.total else 1
        bar = "#" * int(frac * width)
        self.stream.write(f"\r{self.title} [{bar:<{width}}] {self.done / 1e6:6.1f}/"
                          f"{self.total / 1e6:.1f} MB")
        self.stream.flush()

    def blob_done(self, what, digest, size):
        """Without a terminal, one line per blob instead of a bar."""
        if not self.enabled:
            with self._lock:
                self.stream.write(f"{self.title}: {what} {digest[:19]} {size / 1e6:.1f} MB done\n")
                self.stream.flush()

    def finish(self):
        if self.enabled:
            self.done = self.total
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


class Cancelled:
    """Set by the first download that fails: the others stop at their next chunk."""

    def __init__(self):
        self.flag = False

    def set(self):
        self.flag = True

    def is_set(self):
        return self.flag


def in_parallel(work, items, workers, cancelled, timeout=60):
    """work(item) for each item, on `workers` threads (this one included);
    raises the first real error in the items' order (not the "cancelled"
    of the downloads it stopped).  Bare `_thread`: `threading` would import
    functools and collections for a join."""
    todo = list(enumerate(items))
    errors = []
    lock = _thread.allocate_lock()

    def worker(done=None):
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    i, item = todo.pop(0)
                try:
                    work(item)
                except BaseException as e:  # ^C too: raised after the join
                    with lock:
                        errors.append((i, e))
                        todo.clear()  # nothing new starts after a failure
        finally:
            if done is not None:
                done.release()

    finished = []
    try:
        for _ in range(workers - 1):
            done = _thread.allocate_lock()
            done.acquire()
            _thread.start_new_thread(worker, (done,))
            finished.append(done)
        worker()
        while finished:
            finished[-1].acquire()  # the thread releases it on its way out
            finished.pop()
    except BaseException:  # ^C: the others stop at their next chunk and clean up
        cancelled.set()
        for done in finished:
            done.acquire(timeout=timeout)
        raise
    errors.sort(key=lambda pair: pair[0])
    real = [e for _, e in errors if str(e) != "cancelled"]
    if real or errors:
        raise real[0] if real else errors[0][1]
