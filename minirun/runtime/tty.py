"""Relaying a container's pty to our own terminal (foreground `run` with
process.terminal and no --console-socket)."""
import fcntl
import os
import selectors
import sys
import termios
import tty


def copy_window_size(master):
    """Give the container's terminal the size of ours (stdin's, or stdout's)."""
    for fd in (0, 1):
        if os.isatty(fd):
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
            return


def relay(master, pid):
    saved = None
    copy_window_size(master)
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop typed-ahead input
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    stdin_open = True
    try:
        sel.register(0, selectors.EVENT_READ)
    except (ValueError, PermissionError, OSError):
        stdin_open = False
    try:
        while True:
            for key, _ in sel.select():
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
                elif stdin_open:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        stdin_open = False
                        os.write(master, b"\x04")  # EOF for the container's line discipline
                    else:
                        os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
        sys.stdout.flush()
