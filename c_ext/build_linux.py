"""cffi builder for minirun._linux (API mode, compiled at install time)."""
from pathlib import Path

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int mr_unshare(int flags);
    int mr_setns(int fd, int nstype);
    int mr_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data);
    int mr_umount2(const char *target, int flags);
    int mr_pivot_root(const char *new_root, const char *put_old);
    int mr_close_range(unsigned int first, unsigned int last, unsigned int flags);
    int mr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                   uint64_t resolve);
    int mr_setdomainname(const char *name, size_t len);
    int mr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                 unsigned long a5);
    long mr_join_session_keyring(const char *name);
    int mr_seccomp_filter(unsigned int flags, const void *insns, unsigned short count);
    int mr_bpf_prog_load_cgroup_device(const void *insns, unsigned int insn_cnt,
                                       const char *license, char *log, unsigned int log_size);
    int mr_bpf_prog_attach(int cgroup_fd, int prog_fd, unsigned int attach_type,
                           unsigned int flags);
    """
)
ffibuilder.set_source(
    "minirun._linux",
    (Path(__file__).parent / "linux.c").read_text(),
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
