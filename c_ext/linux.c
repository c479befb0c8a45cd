/*
 * minirun's thin wrappers around the Linux system calls Python 3.11 lacks.
 *
 * Each function returns what the kernel returns (-1 on failure, with errno
 * set); minirun/linux/syscalls.py turns failures into OSError.  Nothing here
 * holds state or allocates: it is a seam, not logic.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/bpf.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* unshare(2): leave the caller's namespaces named in flags (CLONE_NEW*). */
int mr_unshare(int flags) { return unshare(flags); }

/* setns(2): join the namespace behind fd; nstype 0 accepts any type. */
int mr_setns(int fd, int nstype) { return setns(fd, nstype); }

/* mount(2); NULL strings are passed through as NULL. */
int mr_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

/* umount2(2) */
int mr_umount2(const char *target, int flags) { return umount2(target, flags); }

/* pivot_root(2) has no glibc wrapper. */
int mr_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/* close_range(2): close (or with CLOSE_RANGE_CLOEXEC, mark) fds first..last. */
int mr_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

/* openat2(2): open a path with RESOLVE_* scoping (e.g. RESOLVE_IN_ROOT). */
int mr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
               uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* setdomainname(2) (Python only has sethostname). */
int mr_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

/* prctl(2) for the options python-prctl does not cover (PR_CAP_AMBIENT). */
int mr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
             unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

/* keyctl(2) KEYCTL_JOIN_SESSION_KEYRING: give the container its own keyring. */
long mr_join_session_keyring(const char *name)
{
    return syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, name);
}

/* bpf(2) BPF_PROG_LOAD of a cgroup device program (cgroup v2 has no devices
 * controller files: access to device nodes is decided by an eBPF program
 * attached to the cgroup).  insns is an array of struct bpf_insn. */
int mr_bpf_prog_load_cgroup_device(const void *insns, unsigned int insn_cnt,
                                   const char *license, char *log, unsigned int log_size)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_cnt;
    attr.license = (uint64_t)(uintptr_t)license;
    if (log && log_size) {
        attr.log_level = 1;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
    }
    return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
}

/* bpf(2) BPF_PROG_ATTACH: attach prog_fd to the cgroup behind cgroup_fd. */
int mr_bpf_prog_attach(int cgroup_fd, int prog_fd, unsigned int attach_type,
                       unsigned int flags)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = cgroup_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = attach_type;
    attr.attach_flags = flags;
    return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr);
}

/* seccomp(SECCOMP_SET_MODE_FILTER): load a BPF program of `count` instructions. */
int mr_seccomp_filter(unsigned int flags, const void *insns, unsigned short count)
{
    struct sock_fprog prog = { .len = count, .filter = (struct sock_filter *)insns };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}
