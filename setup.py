"""Build glue: the cffi extension (minirun._linux) and the static exec helper.

Everything else lives in pyproject.toml.  The helper (c_ext/exec_helper.c) is a
tiny static executable, not a Python extension, so it gets its own compile
step next to the extension's output directory (works for both `pip install .`
and `pip install -e .`).
"""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithHelper(build_ext):
    def run(self):
        super().run()
        package_dir = os.path.dirname(self.get_ext_fullpath("minirun._linux"))
        out_dir = os.path.join(package_dir, "libexec")
        os.makedirs(out_dir, exist_ok=True)
        out = os.path.join(out_dir, "minirun-exec")
        cc = os.environ.get("CC", "cc")
        subprocess.check_call([cc, "-static", "-Os", "-s", "-Wall", "-o", out,
                               os.path.join(HERE, "c_ext", "exec_helper.c")])


setup(
    cffi_modules=["c_ext/build_linux.py:ffibuilder", "c_ext/build_seccomp.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithHelper},
)
