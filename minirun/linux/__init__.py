"""The one seam between minirun and the kernel.

Everything that makes a raw system call goes through this package: the cffi
extension (`minirun._linux`, built from c_ext/linux.c) for what Python lacks,
python-prctl for capabilities and process attributes, and the standard library
for the rest.  Keeping it in one place makes the rest of minirun readable and
lets `--trace` show every kernel step (see trace.py).
"""
