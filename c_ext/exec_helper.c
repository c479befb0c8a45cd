/*
 * minirun-exec: the last program minirun runs inside a container before the
 * user's process.  It exists for one reason: CVE-2019-5736.
 *
 * If the final execve() inside a container were done by minirun's Python
 * process, then until that moment /proc/<pid>/exe of a process inside the
 * container would be the host's python interpreter, and a malicious container
 * could open it and later overwrite the host binary.  Instead, minirun copies
 * this small static program into a sealed memfd (memfd_create + F_SEAL_*),
 * and fexecve()s it: from then on /proc/<pid>/exe is an anonymous, sealed,
 * read-only in-memory file that nothing can write to.  Static, because after
 * pivot_root the host's dynamic loader is gone.
 *
 * usage: minirun-exec FIFO_FD SECCOMP_FD SECCOMP_FLAGS PATH ARGV0 [ARG...]
 *   FIFO_FD       -1, or an O_PATH fd of <state>/exec.fifo: block until
 *                 `minirun start` opens the FIFO's other end (the create/start
 *                 split), via /proc/self/fd/FIFO_FD, as runc does.
 *   SECCOMP_FD    -1, or an fd holding a compiled BPF filter (struct
 *                 sock_filter[]); loaded last so it only restricts the user's
 *                 program, not minirun.
 *   PATH          the resolved executable; ARGV0... its argv.
 * The environment is passed through unchanged to the user's program.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void die(int code, const char *what, const char *arg)
{
    dprintf(2, "minirun-exec: %s %s: %s\n", what, arg, strerror(errno));
    _exit(code);
}

static void wait_for_start(int fifo_fd)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fifo_fd);
    /* Opening the FIFO for writing blocks until `start` opens it for reading. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die(1, "open exec fifo", path);
    if (write(fd, "0", 1) != 1)
        die(1, "write exec fifo", path);
    close(fd);
    close(fifo_fd);
}

static void load_seccomp(int bpf_fd, unsigned int flags)
{
    struct stat st;
    if (fstat(bpf_fd, &st) < 0)
        die(1, "stat", "seccomp program");
    size_t len = (size_t)st.st_size;
    struct sock_filter *insns = malloc(len ? len : 1);
    if (!insns)
        die(1, "malloc", "seccomp program");
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(bpf_fd, (char *)insns + got, len - got, (off_t)got);
        if (n <= 0)
            die(1, "read", "seccomp program");
        got += (size_t)n;
    }
    close(bpf_fd);
    struct sock_fprog prog = {
        .len = (unsigned short)(len / sizeof(struct sock_filter)),
        .filter = insns,
    };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) < 0)
        die(1, "load", "seccomp filter");
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        dprintf(2, "usage: minirun-exec FIFO_FD SECCOMP_FD SECCOMP_FLAGS PATH ARGV0 [ARG...]\n");
        return 2;
    }
    int fifo_fd = atoi(argv[1]);
    int bpf_fd = atoi(argv[2]);
    unsigned int seccomp_flags = (unsigned int)strtoul(argv[3], NULL, 0);
    const char *path = argv[4];

    if (fifo_fd >= 0)
        wait_for_start(fifo_fd);
    if (bpf_fd >= 0)
        load_seccomp(bpf_fd, seccomp_flags);
    execve(path, &argv[5], environ);
    /* Same exit codes as a shell: 127 not found, 126 found but not runnable. */
    die(errno == ENOENT ? 127 : 126, "exec", path);
    return 1;
}
