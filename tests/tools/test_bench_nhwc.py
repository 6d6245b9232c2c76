"""The NHWC kernels of the bench's NumPy CNN against graphc's op references, and the
graphc version line of the bench report.

Every kernel is compared on random data with the NCHW reference of the same op
(:mod:`graphc.ops.conv`, :mod:`graphc.ops.pool`), element by element.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.ops.conv import (
    conv2d_backward_data_reference,
    conv2d_backward_filter_reference,
    conv2d_reference,
)
from graphc.ops.pool import max_pool2d_backward_reference, max_pool2d_reference
from graphc.tools.bench import NumpyCNN, build_cnn, init_cnn
from graphc.tools.bench.machine import git_revision
from graphc.tools.bench.nhwc import (
    add_bias,
    col2im,
    filter_from_matrix,
    filter_matrix,
    filter_taps,
    im2col,
    max_pool2x2,
    max_pool2x2_backward,
    max_pool_quarters,
    max_pool_quarters_backward,
)

RNG = np.random.default_rng(7)


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2)


def _pad(a: np.ndarray, p: int) -> np.ndarray:
    return np.pad(a, ((0, 0), (p, p), (p, p), (0, 0)))


@pytest.mark.parametrize("n,c,o,hw,k", [(3, 1, 8, (10, 10), 3), (2, 8, 16, (7, 6), 3),
                                         (2, 3, 5, (6, 9), 2)])
def test_conv_forward_and_both_gradients_match_the_references(n, c, o, hw, k):
    x = RNG.standard_normal((n, c, *hw)).astype(np.float32)
    w = RNG.standard_normal((o, c, k, k)).astype(np.float32)
    p = k // 2
    xp = _pad(_nhwc(x), p)
    oh, ow = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    cols = im2col(xp, k, k, np.empty((n * oh * ow, k * k * c), np.float32))
    y = cols @ filter_matrix(w, np.empty((k * k * c, o), np.float32))
    want = conv2d_reference(x, w, padding=p)
    np.testing.assert_allclose(_nchw(y.reshape(n, oh, ow, o)), want, rtol=1e-5, atol=1e-5)

    gy = RNG.standard_normal(want.shape).astype(np.float32)
    gy2 = _nhwc(gy).reshape(-1, o)
    gw = filter_from_matrix(cols.T @ gy2, np.empty_like(w))
    np.testing.assert_allclose(gw, conv2d_backward_filter_reference(x, gy, (k, k), padding=p),
                               rtol=1e-4, atol=1e-4)
    taps = np.matmul(gy2, filter_taps(w, np.empty((k, k, o, c), np.float32)))
    gxp = col2im(taps, np.empty(xp.shape, np.float32))
    gx = gxp[:, p:p + hw[0], p:p + hw[1]]
    np.testing.assert_allclose(_nchw(gx), conv2d_backward_data_reference(gy, w, hw, padding=p),
                               rtol=1e-4, atol=1e-4)


def test_max_pool_and_its_gradient_route_to_the_first_maximum_like_graphc():
    # small integers: many ties inside windows, so the first-maximum rule is exercised
    r = RNG.integers(-2, 3, (3, 8, 6, 5)).astype(np.float32)
    want = max_pool2d_reference(_nchw(r), 2)
    p = max_pool2x2(r, np.empty((3, 4, 3, 5), np.float32), np.empty((3, 4, 6, 5), np.float32))
    np.testing.assert_array_equal(_nchw(p), want)
    gp = RNG.standard_normal(p.shape).astype(np.float32)
    hit, taken = np.empty(p.shape, bool), np.empty(p.shape, bool)
    g = max_pool2x2_backward(r, p, gp, np.full(r.shape, np.nan, np.float32), hit, taken)
    np.testing.assert_array_equal(_nchw(g), max_pool2d_backward_reference(_nchw(r), _nchw(gp), 2))


def test_pooled_im2col_rows_and_quarter_pooling_match_the_references():
    """Rows in pooling-quarter order: conv, pool and the pool gradient of graphc."""
    n, c, o = 2, 1, 4
    x = RNG.integers(-1, 2, (n, c, 6, 8)).astype(np.float32)       # ties in the windows
    w = RNG.integers(-1, 2, (o, c, 3, 3)).astype(np.float32)
    xp = _pad(_nhwc(x), 1)
    cols = im2col(xp, 3, 3, np.empty((n * 48, 9 * c), np.float32), pooled=True)
    r4 = (cols @ filter_matrix(w, np.empty((9 * c, o), np.float32))).reshape(4, n, 3, 4, o)
    conv = conv2d_reference(x, w, padding=1)
    want_r4 = np.stack([_nhwc(conv)[:, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)])
    np.testing.assert_array_equal(r4, want_r4)
    p = max_pool_quarters(r4, np.empty((n, 3, 4, o), np.float32))
    np.testing.assert_array_equal(_nchw(p), max_pool2d_reference(conv, 2))
    gp = RNG.standard_normal(p.shape).astype(np.float32)
    hit, taken = np.empty(p.shape, bool), np.empty(p.shape, bool)
    g4 = max_pool_quarters_backward(r4, p, gp, np.empty_like(r4), hit, taken)
    g = np.empty((n, 6, 8, o), np.float32)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        g[:, dy::2, dx::2] = g4[k]
    np.testing.assert_array_equal(_nchw(g), max_pool2d_backward_reference(conv, _nchw(gp), 2))


def test_pool_writes_into_a_view_and_bias_adds_per_channel():
    r = RNG.standard_normal((2, 4, 4, 3)).astype(np.float32)
    padded = np.zeros((2, 4, 4, 3), np.float32)
    max_pool2x2(r, padded[:, 1:3, 1:3], np.empty((2, 2, 4, 3), np.float32))
    np.testing.assert_array_equal(_nchw(padded[:, 1:3, 1:3]), max_pool2d_reference(_nchw(r), 2))
    assert not padded[:, 0].any() and not padded[:, :, 3].any()      # the border stays 0
    m = RNG.standard_normal((2 * 4 * 4, 3)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    np.testing.assert_array_equal(add_bias(m.copy().reshape(8, 12), b), (m + b).reshape(8, 12))


@pytest.mark.parametrize("image,channels,batch", [(28, (8, 16), 5), (8, (16, 32), 3),
                                                  (12, (4, 6), 2)])
def test_numpy_cnn_forward_matches_graphc_on_every_logit(image, channels, batch):
    init = init_cnn(image, channels, seed=2)
    model = build_cnn(init)
    sess = gc.Session(model["graph"], backend="numpy")
    twin = NumpyCNN(init)
    for n in (batch, batch + 1, batch):                  # buffers of two batch sizes
        x = RNG.standard_normal((n, 1, image, image)).astype(np.float32)
        want = sess.run(model["logits"], {model["x"]: x})
        np.testing.assert_allclose(twin.forward(x), want, rtol=1e-5, atol=1e-5)


def test_numpy_cnn_step_matches_graphc_on_every_weight_and_momentum():
    """Every element of the loss, new weights and momentum buffers, small channel counts."""
    init = init_cnn(12, (4, 6), seed=5)
    model = build_cnn(init)
    sess = gc.Session(model["graph"], backend="numpy")
    twin = NumpyCNN(init)
    for _ in range(2):
        x = RNG.standard_normal((6, 1, 12, 12)).astype(np.float32)
        y = RNG.integers(0, 10, 6)
        loss_g, _ = sess.run([model["loss"], model["train"]], {model["x"]: x, model["y"]: y})
        assert twin.step(x, y) == pytest.approx(float(loss_g), rel=1e-5)
        for v, slot, p, vel in zip(model["params"], model["slots"], twin.p, twin.v):
            scale = float(np.abs(sess.get_value(slot)).max())
            np.testing.assert_allclose(p, sess.get_value(v), rtol=1e-5, atol=1e-6 * scale)
            np.testing.assert_allclose(vel, sess.get_value(slot), rtol=1e-4, atol=1e-5 * scale)


# ----------------------------------------------------------------------------- version
def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder,
                   check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_revision_only_for_a_checkout_of_graphc_itself(tmp_path):
    assert git_revision(str(tmp_path / "nowhere" / "graphc" / "__init__.py")) \
        == " (not a git checkout)"
    for project in ("someapp", "graphc"):
        repo = tmp_path / project
        (repo / "graphc").mkdir(parents=True)
        (repo / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
        (repo / "graphc" / "__init__.py").write_text("")
        _git(repo, "init", "-q")
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", "x")
    # graphc installed inside another project's repository (e.g. a venv in its folder)
    assert git_revision(str(tmp_path / "someapp" / "graphc" / "__init__.py")) \
        == " (not a git checkout)"
    nested = tmp_path / "someapp" / "venv" / "site-packages" / "graphc"
    nested.mkdir(parents=True)
    (nested / "__init__.py").write_text("")
    assert git_revision(str(nested / "__init__.py")) == " (not a git checkout)"
    own = tmp_path / "graphc" / "graphc" / "__init__.py"
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=own.parent,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert git_revision(str(own)) == f" (git {rev})"
    own.write_text("# changed\n")
    assert git_revision(str(own)) == f" (git {rev}, modified)"
