"""The parent's channel to the two setup stages (pure logic: no root needed)."""
import pytest

from minirun.errors import MinirunError
from minirun.runtime.channel import Channel
from minirun.runtime.spawn import recv_stage2_pid

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


@pytest.fixture
def ends():
    parent, child = Channel.pair()
    yield parent, child
    parent.close()
    child.close()


def test_stage2_speaking_before_stage1s_pid_is_kept_for_later(ends):
    parent, child = ends
    # Stage 2 is scheduled first and asks for a hook before stage 1 reports.
    child.send(hooks="createRuntime")
    child.send(ready=True)
    child.send(pid=4242)
    assert recv_stage2_pid(parent) == 4242
    assert parent.recv() == {"hooks": "createRuntime"}
    assert parent.recv() == {"ready": True}


def test_pid_first_is_the_usual_order(ends):
    parent, child = ends
    child.send(pid=7)
    child.send(ready=True)
    assert recv_stage2_pid(parent) == 7
    assert parent.recv() == {"ready": True}


def test_an_error_from_either_stage_wins(ends):
    parent, child = ends
    child.send(error="mount /proc: permission denied", kind="setup")
    child.send(pid=7)
    with pytest.raises(MinirunError, match="mount /proc"):
        recv_stage2_pid(parent)


def test_a_stage_that_dies_reads_as_eof(ends):
    parent, child = ends
    child.close()
    with pytest.raises(MinirunError, match="exited during namespace setup"):
        recv_stage2_pid(parent)
