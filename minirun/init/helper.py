"""The exec helper, copied into a sealed memfd before each container starts.

The container's last execve is done by a small static C program
(c_ext/exec_helper.c; init/process.py says why).  The runtime copies it into
a memfd sealed against every write, so a process inside the container that
reaches /proc/<pid>/exe can never overwrite a binary the host runs again
(CVE-2019-5736).  Imported by the runtime before it forks: keep it small.
"""
import fcntl
import os

from minirun.linux.trace import step

HELPER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "libexec", "minirun-exec")
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8


def sealed_helper_fd():
    """A copy of the exec helper in a sealed memfd (read-only forever)."""
    step("memfd_create", "minirun-exec + F_SEAL_WRITE|SHRINK|GROW|SEAL",
         "the process inside the container will run from an unwritable in-memory copy "
         "(CVE-2019-5736)", "memfd_create(2)")
    fd = os.memfd_create("minirun-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    src = os.open(HELPER, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(src).st_size
        offset = 0
        while offset < size:
            offset += os.sendfile(fd, src, offset, size - offset)
    finally:
        os.close(src)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    return fd
