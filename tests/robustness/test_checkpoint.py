"""Checkpoints survive a kill during save, hold any variable name, and fail clearly.

``save`` used to truncate the old file before writing the new one (a SIGKILL left it
empty or cut short), stored names as npz keys (``__step__``, ``file`` and
``allow_pickle`` collided with the format or with ``np.savez``'s own arguments), and
appended ``.npz`` to the path so that ``load`` of the same path failed.
"""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np
import pytest

import graphc as gc
from graphc.ir.errors import CheckpointError

N = 1 << 20  # 4 MiB of float32 per checkpoint


def _big():
    with gc.Graph() as g:
        w = gc.variable(np.zeros(N, np.float32), name="w")
        tag = gc.variable(np.zeros((), np.int64), name="tag", trainable=False)
    return g, w, tag


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_during_save_leaves_the_old_or_the_new_checkpoint(tmp_path):
    g, w, tag = _big()
    path = tmp_path / "model.ckpt"
    sess = gc.Session(g, backend="numpy")
    sess.set_value(w, np.full(N, -1, np.float32))
    sess.set_value(tag, -1)
    sess.save(path)
    rng = random.Random(0)
    for kill in range(6):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: re-save a checkpoint whose every value says which save it is
            try:
                os.close(read_fd)
                for i in range(10**6):
                    sess.set_value(w, np.full(N, i, np.float32))
                    sess.set_value(tag, i)
                    sess.step = i
                    if i == 0:
                        os.write(write_fd, b"1")
                    sess.save(path)
            finally:
                os._exit(0)
        os.close(write_fd)
        assert os.read(read_fd, 1) == b"1"
        os.close(read_fd)
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        fresh = gc.Session(g, backend="numpy")
        fresh.load(path)  # never truncated: the old file or a complete new one
        t = int(fresh.get_value(tag))
        assert fresh.step == t or t == -1, (kill, fresh.step, t)
        np.testing.assert_array_equal(fresh.get_value(w), np.full(N, t, np.float32))
        for leftover in tmp_path.glob(".model.ckpt.*.tmp"):  # the killed save's own
            leftover.unlink()
    sess.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_failed_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    g, w, tag = _big()
    sess = gc.Session(g, backend="numpy")
    path = tmp_path / "m.ckpt"
    sess.save(path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    sess.set_value(tag, 5)
    with pytest.raises(CheckpointError, match="m.ckpt"):
        sess.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


@pytest.mark.parametrize("name", ["__step__", "allow_pickle", "file", "meta", "v0", "a\0b",
                                  "x.npy", "dir/w"])
def test_any_variable_name_round_trips(tmp_path, name):
    with gc.Graph() as g:
        a = gc.variable(np.arange(3, dtype=np.float32), name=name)
        b = gc.variable(np.float64(2.5), name="other")
        bump = gc.assign(a, a + 1.0)
    sess = gc.Session(g, backend="numpy")
    for _ in range(2):
        sess.run(bump)
    sess.save(tmp_path / "ck")
    fresh = gc.Session(g, backend="numpy")
    fresh.load(tmp_path / "ck")
    assert a.name == name
    np.testing.assert_array_equal(fresh.get_value(a), np.arange(3) + 2.0)
    assert fresh.get_value(b) == 2.5 and fresh.step == 2


@pytest.mark.parametrize("filename", ["ck", "ck.npz", "model.ckpt", "weights.npy"])
def test_save_and_load_use_exactly_the_path_given(tmp_path, filename):
    g, w, tag = _big()
    sess = gc.Session(g, backend="numpy")
    sess.set_value(tag, 7)
    sess.save(str(tmp_path / filename))
    assert [p.name for p in tmp_path.iterdir()] == [filename]
    fresh = gc.Session(g, backend="numpy")
    fresh.load(str(tmp_path / filename))
    assert int(fresh.get_value("tag")) == 7


def test_save_to_a_directory_or_a_missing_folder_is_refused(tmp_path):
    g, *_ = _big()
    with pytest.raises(CheckpointError, match="directory") as info:
        gc.Session(g, backend="numpy").save(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / (tmp_path.name + ".npz")).exists()
    with pytest.raises(CheckpointError, match="No such file") as info:
        gc.Session(g, backend="numpy").save(tmp_path / "missing" / "ck")
    assert str(tmp_path / "missing" / "ck") in str(info.value)


def _write_npy(path):
    np.save(path, np.zeros(3))


def _write_truncated(path):
    gc.Session(_big()[0], backend="numpy").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_foreign_zip(path):
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")


def _write_pickled_npz(path):
    np.savez(path, w=np.array([object()], dtype=object))


def _write_corrupt_member(path):
    gc.Session(_big()[0], backend="numpy").save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside w's bytes: the zip's CRC no longer matches
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make", [
    None, lambda p: p.mkdir(), lambda p: p.write_bytes(b""), lambda p: p.write_text("not a zip"),
    _write_npy, _write_truncated, _write_foreign_zip, _write_pickled_npz, _write_corrupt_member,
], ids=["missing", "directory", "empty", "text", "npy", "truncated", "foreign-zip", "pickle",
        "corrupt"])
def test_every_load_failure_is_a_checkpoint_error_naming_the_path(tmp_path, make):
    g, w, tag = _big()
    path = tmp_path / "bad.ckpt"
    if make is not None:
        make(path)
    if make is _write_npy:
        path = tmp_path / "bad.ckpt.npy"
    sess = gc.Session(g, backend="numpy")
    sess.set_value(tag, 3)
    with pytest.raises(gc.GraphcError) as info:
        sess.load(path)
    assert str(path) in str(info.value)
    assert int(sess.get_value(tag)) == 3 and sess.step == 0  # nothing changed


def test_load_refuses_values_that_do_not_fit_the_variable_dtype(tmp_path):
    """load follows set_value's rules: no float into an int variable, no wrap."""
    with gc.Graph() as g:
        i = gc.variable(np.zeros(2, np.int32), name="i")
    sess = gc.Session(g, backend="numpy")
    np.savez(tmp_path / "floats.npz", i=np.array([1.5, 2.0]))
    np.savez(tmp_path / "wide.npz", i=np.array([1, 2**32 + 3]))
    with pytest.raises(gc.DTypeError, match="floats.npz"):
        sess.load(tmp_path / "floats.npz")
    with pytest.raises(CheckpointError, match="wide.npz") as info:
        sess.load(tmp_path / "wide.npz")
    assert "4294967299" in str(info.value) and "int32" in str(info.value)
    with pytest.raises(gc.DTypeError):
        sess.set_value(i, np.array([1.5, 2.0]))
    with pytest.raises(gc.ArgumentError, match="4294967299"):
        sess.set_value(i, np.array([1, 2**32 + 3]))
    np.testing.assert_array_equal(sess.get_value(i), [0, 0])


def test_checkpoints_of_earlier_versions_still_load(tmp_path):
    """Earlier graphc wrote one npz entry per variable name and the step in __step__."""
    with gc.Graph() as g:
        w = gc.variable(np.zeros((2, 2), np.float32), name="W")
        m = gc.variable(np.zeros(2, np.float64), name="SGD/W/momentum")
    np.savez(tmp_path / "old.npz", **{"W": np.eye(2), "SGD/W/momentum": np.ones(2),
                                      "__step__": np.array(41)})
    sess = gc.Session(g, backend="numpy")
    sess.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(sess.get_value(w), np.eye(2))
    np.testing.assert_array_equal(sess.get_value(m), np.ones(2))
    assert sess.step == 41
    # a path without the suffix that earlier versions appended says where the file is
    with pytest.raises(CheckpointError, match=r"old\.npz exists"):
        sess.load(tmp_path / "old")


def test_optimizer_slots_of_layers_load_from_checkpoints_before_name_scopes(tmp_path):
    """Before layers had name scopes, a layer variable's momentum was SGD/dense/W/momentum;
    it is now dense/SGD/W/momentum, and an earlier checkpoint still restores it."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3))
        layer = gc.nn.Dense(2)
        loss = gc.mean(layer(x))
        gc.optim.SGD(0.1, momentum=0.9).minimize(loss)
    sess = gc.Session(g, backend="numpy")
    names = sorted(v.name for v in g.variables())
    assert "dense/SGD/W/momentum" in names
    old = {("SGD/dense/" + n.split("/SGD/")[1]) if "/SGD/" in n else n: np.full(sess.get_value(n).shape, 7.0)
           for n in names}
    np.savez(tmp_path / "old.npz", **old, __step__=np.array(3))
    sess.load(tmp_path / "old.npz")
    assert all((sess.get_value(n) == 7.0).all() for n in names) and sess.step == 3
