"""cffi builder for minirun._libseccomp: libseccomp's declarations, pre-parsed.

Out-of-line ABI mode (set_source with no C source): nothing is compiled, the
build only writes a Python module holding the parsed types, so that
minirun.linux.seccomp can dlopen libseccomp.so.2 without parsing C at run time.
"""
import os
import runpy

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
CDEF = runpy.run_path(os.path.join(_HERE, "..", "minirun", "linux", "libseccomp_cdef.py"))["CDEF"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("minirun._libseccomp", None)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
