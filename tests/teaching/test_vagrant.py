"""The Vagrantfile: valid Ruby, an Ubuntu LTS box with enough memory, the
repository synced, and provisioned by exactly the README's set-up command
(the command CI runs on a fresh machine, so CI tests the provisioning too)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from minirun_testlib import REPO

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

VAGRANTFILE = os.path.join(REPO, "Vagrantfile")

# Loads the Vagrantfile against a stand-in for Vagrant's configuration API and
# prints what it configured as JSON.
RECORDER = r'''
require "json"
$seen = {"providers" => {}, "synced" => [], "provision" => []}
class Recorder
  def initialize(into) ; @into = into ; end
  def method_missing(name, *args, **kw, &blk)
    key = name.to_s
    if key.end_with?("=") then @into[key.chomp("=")] = args.first ; return end
    if key == "vmx" then return (@into["vmx"] ||= {}) end
    self
  end
  def respond_to_missing?(*) = true
end
class VMConfig < Recorder
  def initialize ; super($seen) ; end
  def synced_folder(src, dest, **opts) ; $seen["synced"] << [src, dest, opts] ; end
  def provision(kind, **opts) ; $seen["provision"] << opts.merge("kind" => kind) ; end
  def provider(name) ; yield Recorder.new($seen["providers"][name.to_s] = {}) ; end
end
module Vagrant
  def self.configure(version) ; yield Struct.new(:vm).new(VMConfig.new) ; end
end
load ARGV[0]
puts JSON.generate($seen)
'''


def ruby():
    path = shutil.which("ruby")
    assert path, "ruby is missing (Debian package `ruby`; scripts/install.sh installs it)"
    return path


def readme_setup_command():
    with open(os.path.join(REPO, "README.md")) as f:
        m = re.search(r"^```(?:sh|bash|console)\n(?:\$ )?(.+)$", f.read(), re.M)
    assert m, "README.md has no ```sh block"
    return m.group(1).strip()


@pytest.fixture(scope="module")
def configured():
    proc = subprocess.run([ruby(), "-e", RECORDER, VAGRANTFILE], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_vagrantfile_is_valid_ruby():
    proc = subprocess.run([ruby(), "-c", VAGRANTFILE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "Syntax OK", proc.stdout + proc.stderr


def test_provisioning_runs_exactly_the_readme_setup_command(configured):
    command = readme_setup_command()
    assert command.startswith("./scripts/install.sh")
    (shell,) = [p for p in configured["provision"] if p["kind"] == "shell"]
    lines = [line.strip() for line in shell["inline"].splitlines()]
    assert command in lines, f"provisioning does not run the README's {command!r}: {lines}"
    # ... from the repository's root, as root, stopping at the first failure.
    assert lines.index("cd /vagrant") < lines.index(command)
    assert "set -e" in lines[:lines.index(command)]
    assert shell.get("privileged", True) is True
    # ... and it ends by saying what to type.
    after = "\n".join(lines[lines.index(command) + 1:])
    assert "vagrant ssh" in after and "minirun" in after and "docs/tour" in after
    assert "docs/tour" in configured.get("post_up_message", "")


def test_box_is_an_ubuntu_lts_with_cgroup2_and_enough_memory(configured):
    box = configured["box"]
    m = re.fullmatch(r"[\w-]+/ubuntu-(\d\d)\.04", box)
    assert m and int(m.group(1)) % 2 == 0 and int(m.group(1)) >= 22, box  # 22.04+: cgroup v2
    assert configured["providers"], "no provider settings"
    for name, settings in configured["providers"].items():
        memory = settings.get("memory") or settings.get("vmx", {}).get("memsize")
        assert int(memory) >= 2048, (name, settings)


def test_repository_is_synced_to_vagrant(configured):
    (synced,) = configured["synced"]
    src, dest, opts = synced
    assert (src, dest) == (".", "/vagrant")
    # The box builds its own artifacts; the host's would be for another machine.
    excluded = opts.get("rsync__exclude", [])
    assert opts.get("type") != "rsync" or ("images/out/" in excluded and "*.so" in excluded)
