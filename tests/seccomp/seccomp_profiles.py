"""Seccomp profiles for the tests.

DOCKER_SHAPED is a reduced copy of the shape of Docker's default profile
(moby profiles/seccomp/default.json as an engine writes it into config.json):
an allow-list with defaultAction SCMP_ACT_ERRNO / EPERM, three x86
architectures, argument-filtered personality and clone entries, and clone3
refused with ENOSYS so that glibc falls back to clone.  The name list is
shorter than Docker's (which has ~370) but keeps its flavour, including names
this libseccomp may not know.  It leaves out, as Docker does for an
unprivileged container, mount, unshare, syslog, reboot and friends.
"""

DOCKER_ALLOWED = [
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl",
    "fdatasync", "flock", "fork", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
    "futex_waitv", "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid",
    "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid",
    "getxattr", "inotify_add_watch", "inotify_init1", "inotify_rm_watch", "ioctl", "kill",
    "landlock_create_ruleset", "lchown", "link", "linkat", "listen", "lseek", "lstat",
    "madvise", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mmap", "mprotect", "mremap", "munmap", "nanosleep", "newfstatat",
    "open", "openat", "openat2", "pause", "pipe", "pipe2", "poll", "ppoll", "prctl",
    "pread64", "preadv", "prlimit64", "pselect6", "pwrite64", "pwritev", "read", "readlink",
    "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "sched_getaffinity", "sched_yield", "select", "sendfile", "sendmmsg",
    "sendmsg", "sendto", "setgid", "setgroups", "setitimer", "setpgid", "setpriority",
    "setresgid", "setresuid", "setsid", "setsockopt", "set_robust_list", "set_tid_address",
    "setuid", "shutdown", "sigaltstack", "socket", "socketcall", "socketpair", "stat",
    "statfs", "statx", "symlink", "symlinkat", "sync", "sysinfo", "tgkill", "time",
    "timer_create", "timer_delete", "timer_settime", "tkill", "truncate", "umask", "uname",
    "unlink", "unlinkat", "utimensat", "vfork", "wait4", "waitid", "write", "writev",
    "_llseek", "_newselect",
    "a_syscall_from_the_future",  # unknown to libseccomp: skipped, like runc
]

DOCKER_SHAPED = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": DOCKER_ALLOWED, "action": "SCMP_ACT_ALLOW"},
        # Docker allows only these personalities (query, PER_LINUX, PER_LINUX32,
        # UNAME26, UNAME26|PER_LINUX32).
        *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
           "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]}
          for value in (0, 8, 131072, 131080, 4294967295)),
        # clone without any CLONE_NEW* flag (0x7E020000): no new namespaces.
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        # clone3 hides its flags in a struct seccomp cannot read: refuse it
        # with ENOSYS, and glibc falls back to clone.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}
