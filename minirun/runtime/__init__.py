"""The OCI lifecycle: one module per verb (create, start, kill, delete, ...),
over a small on-disk state store (state.py) and the process-spawning protocol
that builds namespaces (spawn.py)."""
