"""graphc/ops/conv.py: conv2d (NCHW, OIHW) and its two backward ops as graph ops.

Cases (``gradcheck.case``): the formulas are written here as loops over output
positions (einsum over the channels); the harness checks every element forward
(float32: 1e-4 relative to the norm), the static shape with the batch axis ``None``,
finite differences on the NumPy backend (for the backward ops: their own gradients,
i.e. grad of grad) and C against NumPy in one compiled fetch set. Configurations
cover strides, paddings (also more than half the kernel), non-square kernels and
strides, 1x1 filters and outputs that leave input rows untouched (the floor).
The NumPy references themselves are checked against naive loops in test_windows.py.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ops.conv import conv2d_backward_data, conv2d_backward_filter


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_hw(hw, k, s, p):
    return tuple((hw[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in (0, 1))


def np_conv2d(x, w, stride, padding):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = out_hw(x.shape[2:], (kh, kw), (sh, sw), (ph, pw))
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], w)
    return out


def np_conv2d_backward_data(gy, w, hw, stride, padding):
    """Each output position spreads gy * w over the input window it read."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    kh, kw = w.shape[2:]
    gxp = np.zeros((gy.shape[0], w.shape[1], hw[0] + 2 * ph, hw[1] + 2 * pw))
    for i in range(gy.shape[2]):
        for j in range(gy.shape[3]):
            gxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum("no,ochw->nchw", gy[:, :, i, j], w)
    return gxp[:, :, ph:ph + hw[0], pw:pw + hw[1]]


def np_conv2d_backward_filter(x, gy, k, stride, padding):
    (sh, sw), (ph, pw), (kh, kw) = pair(stride), pair(padding), pair(k)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gw = np.zeros((gy.shape[1], x.shape[1], kh, kw))
    for i in range(gy.shape[2]):
        for j in range(gy.shape[3]):
            gw += np.einsum("nchw,no->ochw", xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], gy[:, :, i, j])
    return gw


CONFIGS = {  # name -> ((C, H, W), (O, C, KH, KW), stride, padding)
    "3x3 s1 p1": ((3, 6, 5), (4, 3, 3, 3), 1, 1),
    "3x3 s2 p1": ((2, 7, 7), (3, 2, 3, 3), 2, 1),
    "2x3 s(2,1) p(1,0)": ((2, 6, 7), (2, 2, 2, 3), (2, 1), (1, 0)),
    "1x1": ((1, 5, 5), (2, 1, 1, 1), 1, 0),
    "3x2 s3 p(0,2) floor": ((2, 5, 6), (1, 2, 3, 2), 3, (0, 2)),
}


def conv_case(name, chw, wshape, s, p):
    return case(f"conv2d {name}", lambda x, w: gc.conv2d(x, w, stride=s, padding=p),
                lambda x, w: np_conv2d(x, w, s, p), In((None, *chw)), In(wshape), norm=True)


def backward_data_case(name, chw, wshape, s, p):
    oh, ow = out_hw(chw[1:], wshape[2:], pair(s), pair(p))
    return case(f"conv2d_backward_data {name}",
                lambda gy, w: conv2d_backward_data(gy, w, chw[1:], s, p),
                lambda gy, w: np_conv2d_backward_data(gy, w, chw[1:], s, p),
                In((None, wshape[0], oh, ow)), In(wshape), norm=True)


def backward_filter_case(name, chw, wshape, s, p):
    oh, ow = out_hw(chw[1:], wshape[2:], pair(s), pair(p))
    return case(f"conv2d_backward_filter {name}",
                lambda x, gy: conv2d_backward_filter(x, gy, wshape[2:], s, p),
                lambda x, gy: np_conv2d_backward_filter(x, gy, wshape[2:], s, p),
                In((None, *chw)), In((None, wshape[0], oh, ow)), norm=True)


def cnn_block_grad(x, w, v):
    h = gc.tanh(gc.conv2d(x, w, padding=1))
    h = gc.avg_pool2d(gc.max_pool2d(h, 2), 3, stride=1, padding=1)
    y = gc.sum(gc.flatten(gc.avg_pool2d(h, 3)) * v, axis=1)
    return gc.grad(gc.sum(gc.softplus(y)), w)


CASES = [conv_case(name, *config) for name, config in CONFIGS.items()] + [
    backward_data_case(name, *CONFIGS[name]) for name in ("3x3 s2 p1", "2x3 s(2,1) p(1,0)",
                                                          "3x2 s3 p(0,2) floor")
] + [
    backward_filter_case(name, *CONFIGS[name]) for name in ("3x3 s1 p1", "2x3 s(2,1) p(1,0)",
                                                            "3x2 s3 p(0,2) floor")
] + [
    # an epilogue fused into the conv's store, and a Hessian-vector product
    case("relu(conv2d + b)", lambda x, w, b: gc.relu(gc.conv2d(x, w, padding=1) + b),
         lambda x, w, b: np.maximum(np_conv2d(x, w, 1, 1) + b, 0), In((None, 3, 5, 6)),
         In((4, 3, 3, 3)), In((4, 1, 1)), norm=True),
    case("conv2d'' (w)", lambda x, w: gc.grad(gc.sum(gc.tanh(gc.conv2d(x, w, 2, 1))), w),
         lambda x, w: np_conv2d_backward_filter(x, 1 - np.tanh(np_conv2d(x, w, 2, 1)) ** 2, 3, 2, 1),
         In((None, 2, 5, 5)), In((3, 2, 3, 3)), norm=True),
    # grad of grad through conv -> tanh -> max pool -> avg pools (every part is a
    # case: no formula; finite differences check its gradient, C is compared with NumPy)
    case("cnn block'' (w)", cnn_block_grad, None, In((None, 2, 6, 6)), In((3, 2, 3, 3), -1, 1),
         In((3,)), fd={"rtol": 1e-5}),
]


CASES = quick_on_c(CASES, "conv2d 2x3 s(2,1) p(1,0)")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)

