"""Tests for IDX reading/writing and load_mnist from a local folder."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from graphc import GraphcError
from graphc.toolkit.data import DatasetNotFoundError, IDXError, load_mnist, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    arr = (rng.random((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_header_layout_is_big_endian(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([7, 2], np.int32))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x0c\x01"
    assert raw[4:8] == (2).to_bytes(4, "big")
    assert raw[8:12] == (7).to_bytes(4, "big")
    gz = tmp_path / "x.gz"
    write_idx(gz, np.zeros((2, 2), np.uint8))
    assert gzip.decompress(gz.read_bytes())[:4] == b"\x00\x00\x08\x02"


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(IDXError, match="bad magic number 0x12340801"):
        read_idx(bad)
    code = tmp_path / "code"
    code.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(IDXError, match="magic"):
        read_idx(code)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(IDXError, match="needs 13"):
        read_idx(short)
    gz_named_plain = tmp_path / "plain.gz"
    gz_named_plain.write_bytes(b"\x00\x00\x08\x01")
    with pytest.raises(IDXError, match="not gzip"):
        read_idx(gz_named_plain)
    assert issubclass(IDXError, GraphcError) and issubclass(IDXError, ValueError)
    with pytest.raises(IDXError, match="int64"):
        write_idx(tmp_path / "i64", np.zeros(3, np.int64))


def _write_mnist(directory, n_train=5, n_test=3, gz=False):
    rng = np.random.default_rng(0)
    s = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{s}",
              rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(directory / f"train-labels-idx1-ubyte{s}", np.arange(n_train, dtype=np.uint8))
    write_idx(directory / f"t10k-images-idx3-ubyte{s}",
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(directory / f"t10k-labels-idx1-ubyte{s}", np.arange(n_test, dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    _write_mnist(tmp_path, gz=gz)
    (xtr, ytr), (xte, yte) = load_mnist(tmp_path)
    assert xtr.shape == (5, 1, 28, 28) and xte.shape == (3, 1, 28, 28)
    assert xtr.dtype == np.float32 and 0 <= xtr.min() and xtr.max() <= 1
    assert ytr.dtype == np.int64 and ytr.tolist() == [0, 1, 2, 3, 4]
    raw = read_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    np.testing.assert_allclose(xtr[:, 0] * 255, raw, atol=1e-3)
    (xtr_u8, _), _ = load_mnist(tmp_path, scale=False)
    assert xtr_u8.dtype == np.uint8


def test_load_mnist_names_the_missing_file(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        load_mnist(tmp_path)
    assert "never downloads" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_load_mnist_count_mismatch(tmp_path):
    _write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    with pytest.raises(IDXError, match="expected"):
        load_mnist(tmp_path)
