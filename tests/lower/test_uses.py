"""graphc/lower/uses.py: what a renderer must name at the top of a function, and the
facts a Kernel derives from its body."""

import sympy

from graphc.lower import ir
from graphc.lower.uses import references
from graphc.ops.scalar import dropout


def _buf(name, kind="feed", offset=None, dtype="float32"):
    return ir.Buffer(name, dtype, ir.Place(kind, 0, offset))


def test_buffers_in_first_use_order_with_written_merged():
    x, y, z = _buf("x"), _buf("y", "out"), _buf("z", "arena", ir.mul(ir.N, ir.Lit(64)))
    body = [ir.Loop("i", ir.Lit(4), [
        ir.Store(y, ir.Sym("i"), ir.Load(z, ir.Sym("i"))),
        ir.Store(z, ir.Sym("i"), ir.Load(x, ir.Sym("i"))),
    ])]
    names, bufs = references(body)
    assert list(bufs) == ["z", "y", "x"]  # a statement's reads, then what it writes
    assert [w for _, w in bufs.values()] == [True, True, False]  # z: read, then written
    assert names == {"i", "N"}  # N through z's arena offset only


def test_scratch_copies_templates_and_loose_exprs():
    a, b, s = _buf("a"), _buf("b", "out"), _buf("tmp", "scratch")
    body = [ir.Scratch("tmp", "float32", ir.Lit(8)), ir.Copy(s, a, ir.Lit(8)),
            ir.TemplateCall("gemm", "gemm", "float32",
                            (ir.Ptr(a, ir.ZERO), ir.Ptr(b, ir.Sym("k"), written=True)))]
    names, bufs = references(body, [ir.Sym("v")])
    assert list(bufs) == ["a", "b"]  # the scratch array is the kernel's own
    assert [w for _, w in bufs.values()] == [False, True]
    assert names == {"k", "v"}


def test_a_formula_names_its_locals_and_step_when_it_draws_random_numbers():
    a, t = sympy.symbols("l0 t0", real=True)
    plain = ir.Math(a * t + 1, "float32", ir.Sym("i0"))
    drawn = ir.Math(dropout(a, 1, 7, 0.5), "float32", ir.Sym("i0"))
    assert references([ir.Let("r", "float32", plain)])[0] == {"l0", "t0", "i0"}
    assert references([ir.Let("r", "float32", drawn)])[0] == {"l0", "step", "i0"}


def test_a_kernel_derives_whether_it_can_fail_and_its_epilogue():
    epi = ir.Epilogue("e", [("i", 1), ("j", 1)], "float32", [], ir.Sym("v"))
    call = ir.TemplateCall("gemm", "gemm", "float32", epilogue=epi)
    fail = ir.If(ir.Sym("bad"), [ir.Fail(("bad row ", ir.Sym("r")))])
    plain = ir.Kernel("k0_matmul", "matmul", [], [], [call])
    failing = ir.Kernel("k1_sum", "sum", [], [], [ir.Loop("r", ir.Lit(2), [fail])])
    assert plain.epilogue is epi and not plain.can_fail
    assert failing.epilogue is None and failing.can_fail
