"""Write the `minirun` command as a launcher that skips Python's `site` module.

    python -m minirun.cli.launcher /path/to/venv/bin/minirun   (scripts/install.sh)

pip's console script starts `python` plainly, so every call first runs
`site`: it scans site-packages, reads every .pth file and executes the import
lines in them (setuptools' `_distutils_hack`).  That is about a third of the
interpreter's start-up, paid by each create/start/state/kill/delete an engine
runs.  The launcher starts the same interpreter with -S and puts on sys.path
exactly what `site` would have put there for minirun: the site-packages
directories and the plain directory lines of their .pth files (the editable
checkout), computed once, here, at install time.  Import lines of .pth files
are not run: minirun needs none of them.
"""
import os
import site
import sys

TEMPLATE = """#!{python} -S
# minirun's launcher, written by `python -m minirun.cli.launcher`: the
# interpreter starts without `site` (-S); these are the paths it would add.
import sys
sys.path.extend({paths!r})
from minirun.cli import main
sys.exit(main())
"""


def site_paths():
    """What `site` adds to sys.path in this interpreter, minus .pth imports."""
    paths = []
    for base in site.getsitepackages():
        if not os.path.isdir(base) or base in paths:
            continue
        paths.append(base)
        for name in sorted(os.listdir(base)):
            if not name.endswith(".pth"):
                continue
            with open(os.path.join(base, name)) as f:
                for line in f:
                    line = line.rstrip()
                    if not line or line.startswith(("#", "import ", "import\t")):
                        continue
                    path = os.path.join(base, line)
                    if os.path.isdir(path) and path not in paths:
                        paths.append(os.path.normpath(path))
    return paths


def render(python=None):
    return TEMPLATE.format(python=python or sys.executable, paths=site_paths())


def write(path, python=None):
    """Atomically replace `path` with the launcher (mode 0755)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(render(python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m minirun.cli.launcher PATH")
    write(sys.argv[1])
