"""The checkpoint format: entries v0.. plus a JSON header; versions; file objects."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from graphc.ir.errors import CheckpointError
from graphc.runtime import checkpoint


def test_names_live_only_in_the_header(tmp_path):
    path = tmp_path / "c"
    values = {"__step__": np.ones(2), "file": np.zeros(3, np.int32), "a\0b": np.array(True)}
    checkpoint.write(path, values, step=12)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["meta", "v0", "v1", "v2"]
        meta = json.loads(data["meta"].tobytes())
    assert meta == {"format": "graphc-checkpoint", "version": 1, "step": 12,
                    "names": ["__step__", "file", "a\0b"]}
    got, step = checkpoint.read(path)
    assert step == 12 and list(got) == list(values)
    for name, value in values.items():
        assert got[name].dtype == value.dtype
        np.testing.assert_array_equal(got[name], value)


def test_a_newer_format_version_is_refused_by_name(tmp_path):
    meta = json.dumps({"format": "graphc-checkpoint", "version": 2, "step": 0, "names": []})
    np.savez(tmp_path / "new.npz", meta=np.frombuffer(meta.encode(), np.uint8))
    with pytest.raises(CheckpointError, match="version 2"):
        checkpoint.read(tmp_path / "new.npz")


def test_malformed_header_is_refused(tmp_path):
    meta = json.dumps({"format": "graphc-checkpoint", "version": 1, "step": 0,
                       "names": ["a", "a"]})
    np.savez(tmp_path / "dup.npz", meta=np.frombuffer(meta.encode(), np.uint8),
             v0=np.zeros(1), v1=np.zeros(1))
    with pytest.raises(CheckpointError, match="malformed"):
        checkpoint.read(tmp_path / "dup.npz")


def test_file_objects_round_trip():
    buf = io.BytesIO()
    checkpoint.write(buf, {"w": np.arange(4.0)}, step=3)
    buf.seek(0)
    got, step = checkpoint.read(buf)
    assert step == 3
    np.testing.assert_array_equal(got["w"], np.arange(4.0))


def test_rewriting_keeps_the_file_mode(tmp_path):
    path = tmp_path / "c"
    checkpoint.write(path, {"w": np.zeros(1)}, step=0)
    path.chmod(0o640)
    checkpoint.write(path, {"w": np.ones(1)}, step=1)
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
