#!/bin/bash
# Run the cgroup v2 tests (tests/cgroups/test_cgroup_v2_vm.py) in a throw-away
# QEMU guest with a pure cgroup v2 hierarchy (../shared/vm/run-in-vm.sh):
# this development host is cgroup v1/hybrid, so v2 can only be proven there.
#
#   tests/cgroups/run_v2_in_vm.sh [extra pytest args]
#
# The guest sees the host's / read-only and the repository writable, so it
# runs this checkout with the same interpreter.  --disk gives it /dev/vda for
# the io.max test.  Takes about a minute under software emulation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
run_in_vm=${RUN_IN_VM:-$repo/../shared/vm/run-in-vm.sh}
py=${MINIRUN_PYTHON:-/opt/minirun/venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
cd "$repo"
exec "$run_in_vm" --disk 64M --mem 1G --cpus 2 --timeout 600 -- \
	"$py" -m pytest -q -p no:cacheprovider -m vm tests/cgroups/test_cgroup_v2_vm.py \
	tests/cgroups/test_runtime_v2_vm.py "$@"
