"""Images known only by id (Docker's <none>:<none>) in the store, without root:
images with no layers are plain files (config + manifest blobs)."""
import pytest

from minirun.build.images import State
from minirun.errors import MinirunError
from minirun.image import lineage
from minirun.image import reference
from minirun.image.store import ImageNotFound, Store

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


def make_image(store, label, parent=None, step="step"):
    """An image with no layers; with parent, a build step on top of it."""
    state = (parent.child() if parent else State.scratch())
    state.run_config["Labels"] = {"n": str(label)}
    state.add_history(f"{step} {label}", 0, empty_layer=True)
    state.write(store)
    return state


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store")).ensure()


def test_untagged_image_resolves_by_full_id_sha256_and_prefix(store):
    state = make_image(store, 1)
    store.add_untagged(state.digest)
    image_id = store.resolve(state.digest).id  # by manifest digest too
    for name in (image_id, image_id.partition(":")[2], image_id[:19], image_id[7:19],
                 image_id[7:11]):
        image = store.resolve(name)
        assert image.digest == state.digest and image.names == []
    rows = store.images()
    assert [(r["repository"], r["tag"], r["dangling"]) for r in rows] == \
        [("<none>", "<none>", True)]


def test_unrecorded_image_is_not_found(store):
    state = make_image(store, 1)  # blobs only: what gc would take
    with pytest.raises(ImageNotFound):
        store.resolve(state.digest[7:19])


def test_ambiguous_prefix_is_an_error(store):
    seen = {}
    for n in range(2000):  # deterministic contents: the same pair every run
        state = make_image(store, n)
        store.add_untagged(state.digest)
        image_id = store.resolve(state.digest).id
        short = image_id[7:10]
        if short in seen:
            break
        seen[short] = image_id
    else:
        pytest.fail("no two ids share 3 hex digits")
    with pytest.raises(MinirunError, match=f"ambiguous image id prefix: {short}"):
        store.resolve(short)
    assert store.resolve(image_id[7:20]).id == image_id  # a longer prefix is unique


def test_retag_leaves_the_old_image_dangling_and_prune_removes_it(store):
    old, new = make_image(store, "old"), make_image(store, "new")
    ref = reference.parse("app:1")
    store.tag(ref, old.digest)
    store.tag(ref, new.digest)
    assert [(r["repository"], r["tag"]) for r in store.images()] == \
        [("app", "1"), ("<none>", "<none>")]
    old_id = store.resolve(old.digest).id
    assert store.resolve(old_id[7:19]).digest == old.digest
    assert store.prune() == [("Deleted", old_id)]
    assert store.lookup(old_id) is None and store.resolve("app:1").digest == new.digest
    assert store.gc()[0] == 2  # the old config and manifest blobs


def test_tagging_a_dangling_image_names_it(store):
    state = make_image(store, 1)
    store.add_untagged(state.digest)
    store.tag(reference.parse("named:1"), state.digest)
    assert store.untagged() == {}
    assert store.resolve(state.digest[7:19]).names == ["docker.io/library/named:1"]


def test_steps_stay_while_an_image_is_built_on_them(store):
    step1 = make_image(store, 1)
    step2 = make_image(store, 2, parent=step1)
    final = make_image(store, 3, parent=step2)
    other = make_image(store, 4)  # a step of another build, nothing on it
    for s in (step1, step2, other):
        store.add_untagged(s.digest, intermediate=True)
    store.tag(reference.parse("app:1"), final.digest)
    assert [r["name"] for r in store.images()] == ["docker.io/library/app:1"]
    assert len(store.images(all_images=True)) == 4
    # dangling prune: the orphan step goes, the ones app:1 is built on stay
    assert store.prune() == [("Deleted", _config(store, other))]
    assert set(store.untagged()) == {step1.digest, step2.digest}
    # rmi of the image: its steps go with it, as Docker's "Deleted:" lines
    records = store.delete("app:1")
    assert records == [("Untagged", "docker.io/library/app:1"),
                       ("Deleted", _config(store, final)),
                       ("Deleted", _config(store, step2)), ("Deleted", _config(store, step1))]
    assert store.untagged() == {} and store.refs() == {}


def _config(store, state):
    from minirun.image import manifest as mf

    return mf.Image(store, state.digest).config_digest


def test_a_dangling_image_keeps_its_steps(store):
    step = make_image(store, 1)
    final = make_image(store, 2, parent=step)
    store.add_untagged(step.digest, intermediate=True)
    store.add_untagged(final.digest)
    assert store.prune(all_images=False) == [("Deleted", _config(store, final)),
                                             ("Deleted", _config(store, step))]


def test_a_step_reused_as_a_build_result_stays_dangling(store):
    state = make_image(store, 1)
    store.add_untagged(state.digest)
    store.add_untagged(state.digest, intermediate=True)  # a later build's cache hit
    assert store.untagged()[state.digest]["intermediate"] is False


def test_rmi_by_id_of_multiply_named_image_needs_force(store):
    state = make_image(store, 1)
    store.tag(reference.parse("a:1"), state.digest)
    store.tag(reference.parse("b:1"), state.digest)
    short = _config(store, state)[7:19]
    with pytest.raises(MinirunError, match=f"conflict: unable to delete {short} \\(must be "
                                           f"forced\\) - image is referenced in multiple"):
        store.delete(short)
    assert [a for a, _ in store.delete(short, force=True)] == ["Untagged", "Untagged", "Deleted"]


def test_descends_compares_layers_and_history():
    step = (["sha256:" + "a" * 64], [{"created_by": "RUN x"}])
    child = (step[0] + ["sha256:" + "b" * 64], step[1] + [{"created_by": "RUN y"}])
    meta_child = (step[0], step[1] + [{"created_by": "ENV k=v"}])
    stranger = (["sha256:" + "c" * 64], [{"created_by": "RUN x"}, {"created_by": "RUN y"}])
    assert lineage.descends(child, step) and lineage.descends(meta_child, step)
    assert not lineage.descends(step, step) and not lineage.descends(step, child)
    assert not lineage.descends(stranger, step)
