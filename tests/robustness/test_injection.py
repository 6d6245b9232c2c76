"""User strings that reach generated C (node names, an op's ``fn``, definition sites)
cannot inject code or break the build: they all go through graphc.render.escape.

* unit: every hostile string, as a comment and as a string literal, compiles (in C11,
  where trigraphs are on, and GNU C) and the literal holds exactly the string's bytes;
* end to end: an ``__attribute__((constructor))`` payload in a node name or in the file
  name of the defining code never runs; a newline (quote, backslash, NUL, ``%n``) in a
  name compiles with ``check_numerics=True`` and is reported back; buffers named after
  non-ASCII node names are ASCII C identifiers.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.env import find_c_compiler
from graphc.ops.scalar import A
from graphc.render.escape import c_comment, c_identifier, c_string

pytestmark = pytest.mark.needs_c

#: each one would, unescaped, end a comment or a string literal, splice a line, or
#: redefine main (a compile error): compiling cleanly proves it stayed inert
HOSTILE = [
    "*/ int main(void) { return 7; } /*",
    "x*\\\n/ int main(void) { return 7; } /*",          # splice of * and /
    "x??/\n*/ int main(void) { return 7; } /*",          # trigraph backslash, then newline
    "x\\\nint main(void) { return 7; }",
    '"); int main(void) { return 7; } static const char *q = ("',
    "x\r\nint main(void) { return 7; }\r",
    "x\0y*/ int main(void) { return 7; }",
    "??= ??( ??) ??' ??< ??! ??> ??- ???/ ??\"",
    "%n%s%% \\0 \\x41 \\101 \\u00e9",
    "é ✓ \u202e \ud800 \t\v\f\x7f end?",
    "/*/ // /**/ *//",
    "",
]


def _compiler() -> str:
    found = find_c_compiler()
    if found is None:
        pytest.skip("no C compiler")
    return found[0]


@pytest.mark.parametrize("std", ["-std=c11", "-std=gnu11"])
def test_hostile_strings_stay_inside_their_comment_and_string_literal(tmp_path, std):
    decls = "".join(f"/* {c_comment(s)} */\nstatic const char s{k}[] = {c_string(s)};\n"
                    for k, s in enumerate(HOSTILE))
    prints = "".join(f'    printf("%zu:", sizeof s{k} - 1); fwrite(s{k}, 1, sizeof s{k} - 1, stdout);\n'
                     for k in range(len(HOSTILE)))
    src = tmp_path / "t.c"
    src.write_text("#include <stdio.h>\n" + decls + "int main(void) {\n" + prints + "    return 0;\n}\n")
    exe = tmp_path / "t"
    build = subprocess.run([_compiler(), std, "-Wall", "-Wextra", "-Werror", "-Wno-unused-const-variable",
                            str(src), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True)
    assert run.returncode == 0
    out, got = run.stdout, []
    while out:
        n, _, out = out.partition(b":")
        got.append(out[:int(n)])
        out = out[int(n):]
    assert got == [s.encode("utf-8", "surrogatepass") for s in HOSTILE]


def test_escaped_text_is_printable_ascii_without_splices():
    for s in HOSTILE:
        for text in (c_comment(s), c_string(s)):
            assert all(" " <= ch <= "~" for ch in text), text
            assert "??" not in text and "\\\n" not in text
        assert "*/" not in c_comment(s) and "/*" not in c_comment(s) and "\\" not in c_comment(s)
        assert re.fullmatch(r"p_[A-Za-z0-9_]*", c_identifier(s, "p_"))


# -- end to end ------------------------------------------------------------------------------

_PWN = ('__attribute__((constructor)) static void gc_pwn(void) '
        '{ FILE *f = fopen("pwned", "w"); if (f) fclose(f); }')
NAME_PAYLOADS = [
    "f*\\\n/ " + _PWN + " /*",
    "f */ " + _PWN + " /*",
    "f??/\n*/ " + _PWN + " /*",
    'f"); } ' + _PWN + ' static int gc_q(void) { return ("',
]


def _named(x, name: str, expr=A[0] * 2 + 1):
    """An elementwise node named ``name``: through ``fn`` if graphc takes it as one, else
    the node is renamed (the name must be safe whichever way it got there)."""
    try:
        y = gc.elementwise(name, expr, [x])
    except gc.ArgumentError:  # fn must be a plain name: rename instead
        y = gc.elementwise("named", expr, [x])
        y.name = name
    return y


@pytest.mark.parametrize("check_numerics", [False, True])
def test_constructor_payload_in_a_name_or_a_site_never_runs(tmp_path, monkeypatch, check_numerics):
    monkeypatch.chdir(tmp_path)  # where gc_pwn would create its file
    xv = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    for k, payload in enumerate(NAME_PAYLOADS):
        with gc.Graph() as g:
            x = gc.placeholder((None, 3), name="x")
            y = gc.sqrt(gc.abs(_named(x, payload)) + float(k))
        out = gc.Session(g, backend="c", check_numerics=check_numerics).run(y, {x: xv})
        np.testing.assert_allclose(out, np.sqrt(np.abs(xv * 2 + 1) + k), rtol=1e-6)
        assert not (tmp_path / "pwned").exists(), payload
    # the definition site: code from a file whose name is the payload
    namespace = {"gc": gc, "sympy": sympy, "A": A}
    code = ("with gc.Graph() as g:\n    x = gc.placeholder((None, 3), name='x')\n"
            f"    y = gc.elementwise('twice', A[0] * 2 + {check_numerics:d}, [x])\n")
    exec(compile(code, "f*\\\n/ " + _PWN + " /*.py", "exec"), namespace)
    x, y = namespace["x"], namespace["y"]
    assert "gc_pwn" in y.site
    sess = gc.Session(namespace["g"], backend="c", check_numerics=check_numerics)
    np.testing.assert_allclose(sess.run(y, {x: xv}), xv * 2 + check_numerics, rtol=1e-6)
    assert not (tmp_path / "pwned").exists()


def test_newline_quote_and_nul_in_a_name_compile_with_check_numerics():
    name = 'line one\nline "two"\\\r %n%s end'
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        y = _named(x, name, sympy.log(A[0]))
    sess = gc.Session(g, backend="c", check_numerics=True)
    xv = np.array([[0.5, 1.0]], np.float32)
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.log(xv), rtol=1e-6)
    with pytest.raises(gc.NumericsError) as info:
        sess.run(y, {x: np.array([[-0.5, 1.0]], np.float32)})  # log(-0.5): NaN
    assert name in str(info.value)
    # a NUL would end the C format string: the build still succeeds and names the node
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        y = _named(x, "before\0after", sympy.log(A[0]))
    with pytest.raises(gc.NumericsError, match="before"):
        gc.Session(g, backend="c", check_numerics=True).run(y, {x: np.array([[-0.5, 1.0]], np.float32)})


def test_buffers_named_after_non_ascii_names_are_ascii_identifiers():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="entrée")
        w = gc.variable(np.ones((3, 2), np.float32), name="poids/é∂ 1")
        y = gc.tanh(x @ w) * 2.0
    sess = gc.Session(g, backend="c")
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.tanh(xv @ np.ones((3, 2))) * 2, rtol=1e-6)
    source = sess.compile([y]).executable.source
    assert source.isascii()
    assert re.search(r"\bp_poids____1\b", source), "the variable's buffer is named from its name"
