"""What the runtime and the CLI call: networks, and containers' attachments.

The OCI runtime core never calls this (engines bring their own networking); the
Docker-like front end does, between `create` and `start`:

    files = network.etc_files(cid, hostname)        # before create: bind-mount sources
    ... create the container (new netns, files bind-mounted on /etc/...) ...
    info = network.attach(cid, init_pid, network="bridge", publish=["8080:80"],
                          hostname=hostname, aliases=["web"])
    ... start; later, on delete (also --force, also after a crash) ...
    network.detach(cid)

Every kernel object is recorded in the store before it is made, and removed
from the store only after it is gone, so `cleanup_stale()` can always finish
what a crashed container or a killed minirun left behind.

The functions live by concern, and are all importable from here:
  common     parse_mode, netns_path and the checks every call makes
  networks   create_network, remove_network, list_networks, inspect_network
  namefiles  etc_files and the /etc/hosts of peers
  endpoints  attach, connect, detach, endpoint, cleanup_stale, purge
"""
from minirun.network.common import (ETC_FILES, MODES, _check_names, _kernel_error,  # noqa: F401
                                    _me, _now, _open_netns, netns_path, parse_mode)
from minirun.network.endpoints import (_detach, _is_stale, _loopback_up, _result,  # noqa: F401
                                       attach, cleanup_stale, connect, detach, endpoint, purge)
from minirun.network.namefiles import (_extra_hosts, _peers, _refresh_peers,  # noqa: F401
                                       _write_files, etc_files)
from minirun.network.networks import (_ensure_bridge, _network, _new_network,  # noqa: F401
                                      _new_network_locked, _our_bridges, _public,
                                      create_network, inspect_network, list_networks,
                                      remove_network)
