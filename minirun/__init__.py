"""minirun: a container runtime in Python, built directly on Linux primitives."""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"  # the runtime-spec version minirun implements and writes
