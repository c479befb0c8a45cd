"""The embedded DNS resolver that answers containers on user-defined networks
at 127.0.0.11, as Docker's does (see docs/compose.md, "Service discovery").

Standard library only: the monitor (minirun/frontend/monitor.py) imports it,
and the monitor must stay small.

  wire    DNS messages (RFC 1035): parse queries, build answers
  server  the name table (from the network store) and the sockets' handlers
"""
