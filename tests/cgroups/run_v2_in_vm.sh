#!/bin/sh
# Run the cgroup v2 tests in a throw-away QEMU guest whose kernel has only
# cgroup v2 (tests/vm/minivm.py): a cgroup v1/hybrid host cannot prove the v2
# driver itself.  test_cgroup_v2_vm.py's test_v2_suite_in_guest calls this.
#
#   tests/cgroups/run_v2_in_vm.sh [extra pytest args]
#
# The guest sees the host's / read-only (writes go to a tmpfs), so it runs
# this checkout with the same interpreter; --disk gives it /dev/vda for the
# io.max test.  Exit status: pytest's in the guest (124: timed out; 125: the
# guest could not be set up).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=${MINIRUN_PYTHON:-/opt/minirun/venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
cd "$repo"
# Python is 20-40x slower in the guest: compile the bytecode here, and spare
# pytest its plugin scan (hypothesis's plugin alone costs half a minute there).
"$py" -m compileall -q minirun tests images >/dev/null 2>&1 || true
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
exec "$py" tests/vm/minivm.py --disk 64M --mem 1G --cpus 2 --timeout 900 -- \
	"$py" -m pytest -q -p no:cacheprovider -m vm -rs \
	tests/cgroups/test_cgroup_v2_vm.py tests/cgroups/test_runtime_v2_vm.py \
	tests/cgroups/test_frontend_v2_vm.py "$@"
