#!/bin/sh
# minivm's guest side (busybox sh).  Runs twice as PID 1:
#   /init            in the initramfs: load the modules, assemble the root
#                    (host / over 9p, read-only, under a tmpfs overlay) and
#                    switch_root into it, running this script again as
#   ... init run     in that root: cgroup v2 set up as systemd would, run the
#                    job's command, record its status, power off.
# The job directory (9p tag "job", a host directory) holds: command (a shell
# script), modules (the host path of the kernel's module tree); the guest
# writes stdout, stderr and status into it.
bb=/bin/busybox
[ "$1" = run ] && bb=/run/minivm/busybox

fail() {
	echo "minivm guest: $*" >/dev/console
	$bb poweroff -f
}

stage_boot() {
	$bb mount -t proc proc /proc
	$bb mount -t sysfs sysfs /sys
	$bb mount -t devtmpfs devtmpfs /dev
	cmdline=$($bb cat /proc/cmdline)
	while read -r module; do
		case $module in
		virtio_blk.ko) case $cmdline in *minivm.disk=1*) ;; *) continue ;; esac ;;
		esac
		$bb insmod "/lib/modules/$module" || fail "insmod $module"
	done </lib/modules/order

	opts=trans=virtio,version=9p2000.L,msize=512000
	$bb mkdir -p /mnt/host /mnt/scratch
	$bb mount -t 9p -o "$opts,ro,cache=loose" hostroot /mnt/host || fail "9p root"
	$bb mount -t tmpfs -o mode=0755 scratch /mnt/scratch || fail "tmpfs"
	$bb mkdir /mnt/scratch/upper /mnt/scratch/work
	$bb mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/scratch/upper,workdir=/mnt/scratch/work \
		root /newroot || fail "overlay root"

	r=/newroot
	$bb mount -t proc proc $r/proc
	$bb mount -t sysfs sysfs $r/sys
	$bb mount -t devtmpfs devtmpfs $r/dev
	$bb mkdir -p $r/dev/pts $r/dev/shm $r/dev/mqueue
	$bb mount -t devpts -o gid=5,mode=620,ptmxmode=0666 devpts $r/dev/pts
	$bb mount -t tmpfs -o mode=1777,nosuid,nodev shm $r/dev/shm
	$bb mount -t mqueue mqueue $r/dev/mqueue
	# nsdelegate and memory_recursiveprot: the options systemd mounts it with.
	$bb mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $r/sys/fs/cgroup ||
		$bb mount -t cgroup2 cgroup2 $r/sys/fs/cgroup || fail "cgroup2"
	# The host's /run describes the host's processes: start empty.  (/tmp
	# stays: the checkout under test may live there.)
	$bb mount -t tmpfs -o mode=0755,nosuid,nodev run $r/run
	$bb mkdir -p $r/run/minivm/job
	$bb mount -t 9p -o "$opts,cache=none" job $r/run/minivm/job || fail "9p job"

	# The kernel's modules at the path modprobe looks in, for whatever the
	# tests load later (veth, bridge, nf_tables...).
	version=$($bb uname -r)
	modules=$($bb cat $r/run/minivm/job/modules)
	if [ ! -e "$r/lib/modules/$version/modules.dep" ] && [ -d "$r$modules" ]; then
		$bb mkdir -p "$r/lib/modules/$version"
		$bb mount --bind "$r$modules" "$r/lib/modules/$version"
	fi
	$bb cp /bin/busybox /init $r/run/minivm/
	$bb ln -s busybox $r/run/minivm/modprobe
	$bb umount /proc /sys /dev
	exec $bb switch_root $r /run/minivm/busybox sh /run/minivm/init run
	fail "switch_root"
}

stage_run() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	job=/run/minivm/job
	# The kernel calls modprobe to load modules on demand; the host may have no kmod.
	[ -x /sbin/modprobe ] || [ -x /usr/sbin/modprobe ] ||
		echo /run/minivm/modprobe >/proc/sys/kernel/modprobe
	# Give every controller to the children of the root, as systemd does.
	for controller in $($bb cat /sys/fs/cgroup/cgroup.controllers); do
		echo "+$controller" >/sys/fs/cgroup/cgroup.subtree_control
	done
	$bb hostname minivm
	$bb ip link set lo up
	n=0
	case $($bb cat /proc/cmdline) in *minivm.disk=1*)
		while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $bb sleep 0.05; n=$((n + 1)); done ;;
	esac

	/bin/sh $job/command </dev/null >$job/stdout 2>$job/stderr
	status=$?
	# Whatever the command left running goes now, before the status is out.
	$bb kill -KILL -1 2>/dev/null
	echo $status >$job/status.tmp && $bb mv $job/status.tmp $job/status
	$bb sync
	$bb poweroff -f
}

if [ "$1" = run ]; then stage_run; else stage_boot; fi
