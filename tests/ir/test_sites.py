"""Node sites: the user's ``file:line``, never a console-script shim or runpy.

A node made from the user's file (directly, through a layer, a gradient or an optimizer)
records that file's line; a node made while graphc's own command line runs the demo
records the demo's line (graphc/tools/...), not the ``graphc`` script that launched it.
"""

from __future__ import annotations

import linecache
import os
import runpy
import sys

import pytest

import graphc as gc
import graphc.tools.demo as demo_mod

HERE = os.path.basename(__file__)
TOOLS = os.path.join("graphc", "tools") + os.sep


def _line(marker: str) -> int:
    with open(__file__) as f:
        for k, text in enumerate(f, 1):
            if marker in text and "_line(" not in text:
                return k
    raise AssertionError(marker)


def _split(site: str) -> tuple[str, int]:
    path, _, line = site.rpartition(":")
    return path, int(line)


def test_nodes_made_in_a_user_file_show_its_line():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")  # site-x
        h = gc.nn.Dense(4, activation="relu")(x)  # site-dense
        loss = gc.mean(gc.square(h))  # site-loss
        train = gc.optim.SGD(0.1, momentum=0.9).minimize(loss)  # site-train
    lines = {n.name: _split(n.site) for n in g.nodes}
    assert all(os.path.basename(path) == HERE for path, _ in lines.values()), lines
    assert lines["x"][1] == _line("site-x")
    assert {_split(n.site)[1] for n in g.nodes if n.scope == "dense"} == {_line("site-dense")}
    assert lines["mean"][1] == _line("site-loss")
    grads = [n for n in g.nodes if n.role == "grad" and n.scope == "dense"]
    assert grads and {_split(n.site)[1] for n in grads} == {_line("site-dense")}
    assert _split(train.site)[1] == _line("site-train")


def test_a_user_function_called_by_graphc_is_the_users_line():
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        gc.nn.Dense(2, activation=lambda t: t * 0.5)(x)  # site-callback
    mul = next(n for n in g.nodes if n.name == "dense/mul")
    assert mul.site.endswith(f"{HERE}:{_line('site-callback')}")


class _Stop(Exception):
    pass


SHIM = """\
# -*- coding: utf-8 -*-
import re
import sys
from graphc.tools.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


@pytest.mark.parametrize("launcher", ["console-script", "python -m graphc"])
def test_the_demo_graph_shows_the_demo_lines_not_the_launcher(launcher, tmp_path, monkeypatch):
    """``graphc demo`` run through pip's console-script shim (or ``python -m graphc``):
    the model's nodes point at graphc/tools, where the demo builds them."""
    built = {}

    def stop_at_session(graph, *args, **kwargs):  # the demo's first step after building
        built["graph"] = graph
        raise _Stop

    monkeypatch.setattr(demo_mod, "_load_digits", lambda seed: (None, None, None))
    monkeypatch.setattr(gc, "Session", stop_at_session)
    shim = tmp_path / "graphc"
    shim.write_text(SHIM)
    monkeypatch.setattr(sys, "argv", ["graphc", "demo", "--quiet", "--out", str(tmp_path)])
    with pytest.raises(_Stop):
        if launcher == "console-script":
            runpy.run_path(str(shim), run_name="__main__")
        else:
            runpy.run_module("graphc", run_name="__main__", alter_sys=True)
    nodes = built["graph"].nodes
    assert len(nodes) > 50
    shown = {n.site for n in nodes}
    assert None not in shown
    assert not any(str(tmp_path) in s or "runpy" in s or "cli.py" in s for s in shown), shown
    files = {_split(s)[0] for s in shown}
    assert all(TOOLS in os.path.abspath(f) for f in files), files
    conv = [n for n in nodes if n.scope == "conv2d" and n.op.name == "conv2d"]
    path, line = _split(conv[0].site)
    assert "net(x)" in linecache.getline(os.path.abspath(path), line)


def test_calling_the_demo_builder_from_user_code_shows_the_users_line():
    cnn = demo_mod.build_digits_cnn(seed=0)  # site-builder
    sites = {n.site for n in cnn["graph"].nodes if n.site != "<learning phase>"}
    assert sites == {f"{_split(next(iter(sites)))[0]}:{_line('site-builder')}"}
    assert all(s.endswith(f"{HERE}:{_line('site-builder')}") for s in sites)

