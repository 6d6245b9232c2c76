"""IDX files (the MNIST format): read, write, and load MNIST from a local folder.

An IDX file is two zero bytes, a dtype code (0x08 ubyte, 0x09 byte, 0x0B
int16, 0x0C int32, 0x0D float32, 0x0E float64), the rank, then one
big-endian uint32 per dimension and the data, big-endian, row-major. A path
ending in ``.gz`` is gzip-compressed. Nothing here downloads anything.

Example::

    from graphc.data import write_idx, read_idx
    write_idx("labels.idx1-ubyte.gz", np.array([3, 1, 4], np.uint8))
    read_idx("labels.idx1-ubyte.gz")          # array([3, 1, 4], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
from typing import IO, Any

import numpy as np

from ...ir.errors import GraphcError

__all__ = [
    "MNIST_FILES",
    "DatasetNotFoundError",
    "IDXError",
    "load_mnist",
    "read_idx",
    "write_idx",
]

_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_BY_DTYPE = {np.dtype(v).newbyteorder("=").str[1:]: k for k, v in _CODES.items()}

#: the standard MNIST file names (each may also carry a ``.gz`` suffix)
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class IDXError(GraphcError, ValueError):
    """A file that is not a well-formed IDX file."""


class DatasetNotFoundError(GraphcError, FileNotFoundError):
    """A dataset file that is not where the user said it is (graphc never downloads)."""


def _open(path: str | os.PathLike, mode: str) -> IO[bytes]:
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a native-endian array (gzip if the name ends in ``.gz``).

    Raises :class:`IDXError` for a bad magic number, an unknown dtype code or a
    truncated/oversized payload.

    Example::

        images = read_idx("mnist/train-images-idx3-ubyte.gz")   # (60000, 28, 28) uint8
    """
    try:
        with _open(path, "rb") as f:
            raw = f.read()
    except gzip.BadGzipFile as exc:
        raise IDXError(f"read_idx: {path} ends in .gz but is not gzip data ({exc})") from None
    if len(raw) < 4:
        raise IDXError(f"read_idx: {path} is too short ({len(raw)} bytes) to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in _CODES:
        hint = " (a gzip file? name it *.gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise IDXError(f"read_idx: bad magic number 0x{magic:08X} in {path}: an IDX file "
                       f"starts with 0x0000, a dtype code (0x08, 0x09, 0x0B-0x0E) and the "
                       f"rank{hint}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"read_idx: {path} is truncated inside its header ({ndim} dims)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_CODES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"read_idx: {path} has {len(raw)} bytes but its header (shape {dims}, "
                       f"{dtype.newbyteorder('=').name}) needs {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: Any) -> None:
    """Write ``array`` as an IDX file (gzip if the name ends in ``.gz``).

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (cast
    int64 labels to uint8 or int32 first).

    Example::

        write_idx("tiny-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    """
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=").str[1:]
    if key not in _BY_DTYPE:
        raise IDXError(f"write_idx: IDX cannot store {arr.dtype}; use one of uint8, int8, "
                       "int16, int32, float32, float64")
    if arr.ndim > 255:
        raise IDXError(f"write_idx: rank {arr.ndim} is more than IDX allows (255)")
    code = _BY_DTYPE[key]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(arr, dtype=_CODES[code]).tobytes()
    with _open(path, "wb") as f:
        f.write(header + payload)


def _find(directory: str, base: str) -> str:
    for name in (base, base + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise DatasetNotFoundError(
        f"load_mnist: missing file {base} (or {base}.gz) in {directory}; graphc never "
        f"downloads data: put the four MNIST files ({', '.join(MNIST_FILES.values())}) there")


def load_mnist(directory: str | os.PathLike, scale: bool = True
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST (or Fashion-MNIST) from the four standard IDX files in ``directory``.

    Returns ``((x_train, y_train), (x_test, y_test))``: images of shape
    ``(N, 1, 28, 28)``, float32 in [0, 1] (uint8 with ``scale=False``), and
    int64 labels. A missing file raises :class:`DatasetNotFoundError` naming it.

    Example::

        (x_tr, y_tr), (x_te, y_te) = load_mnist("~/data/mnist")
    """
    directory = os.path.expanduser(os.fspath(directory))
    if not os.path.isdir(directory):
        raise DatasetNotFoundError(f"load_mnist: directory {directory} does not exist; graphc "
                                   "never downloads data")
    paths = {k: _find(directory, v) for k, v in MNIST_FILES.items()}
    out = []
    for part in ("train", "test"):
        images, labels = read_idx(paths[f"{part}_images"]), read_idx(paths[f"{part}_labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IDXError(f"load_mnist: {paths[f'{part}_images']} has shape {images.shape} "
                           f"and {paths[f'{part}_labels']} has shape {labels.shape}; expected "
                           "(N, H, W) images and (N,) labels")
        x = images[:, None, :, :]
        if scale:
            x = x.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
        out.append((x, labels.astype(np.int64)))
    return out[0], out[1]
