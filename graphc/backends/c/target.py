"""The C target: the table the C-style renderer reads for the CPU.

Loops spread over threads with OpenMP (``parallel for``, only when the work is large
enough: decided at generation time when it is a known number) and over SIMD lanes
with ``omp simd``; math functions are libm's, with graphc's own ``gc_expf`` and
``gc_tanhf`` for float32 (they vectorize); a kernel fails by writing its message into the context's
error buffer and returning 1; templates are the headers of ``kernels/``, called by
``gc_s<fn>`` / ``gc_d<fn>`` with the step's workspace.
"""

from __future__ import annotations

from ...lower import ir
from ...render.cstyle import CStyle
from ...render.escape import c_string
from .abi import ERR_BYTES

#: template function -> (shape struct it takes or None, it takes an epilogue,
#: arguments of its workspace-size function: "shape" or indices into the call's args)
TEMPLATE_FUNCTIONS = {
    "gemm": (None, True, (2, 3, 4)),
    "gemm_packed": (None, True, (1, 2, 3)),
    "gemm_pack_b": (None, False, None),
    "conv2d_forward": ("gc_conv_shape", True, "shape"),
    "conv2d_backward_data": ("gc_conv_shape", True, "shape"),
    "conv2d_backward_filter": ("gc_conv_shape", False, "shape"),
    "max_pool2d_forward": ("gc_pool_shape", False, None),
    "max_pool2d_backward": ("gc_pool_shape", False, None),
    "max_pool2d_select": ("gc_pool_shape", False, None),
    "avg_pool2d_forward": ("gc_pool_shape", False, None),
    "avg_pool2d_backward": ("gc_pool_shape", False, None),
}


class CTarget(CStyle):
    name = "c"
    functions = {
        "exp": ("gc_expf", "exp"),
        "tanh": ("gc_tanhf", "tanh"),
        "log": ("logf", "log"),
        "isfinite": ("isfinite", "isfinite"),
        "isnan": ("isnan", "isnan"),
        "isinf": ("isinf", "isinf"),
        "sigmoid": ("gc_sigmoidf", "gc_sigmoid"),
        "softplus": ("gc_softplusf", "gc_softplus"),
        "dropout": ("gc_dropoutf", "gc_dropout"),
        "first_max_takes": ("GC_FIRST_MAX_TAKES", "GC_FIRST_MAX_TAKES"),
        "allreduce_mean": ("gc_mpi_allreduce_mean_f", "gc_mpi_allreduce_mean_d"),  # (mpi.py)
    }

    #: SIMD loops ask for 16 lanes: 512-bit vectors where the CPU has them, although the
    #: build prefers 256-bit ones for the loops GCC vectorizes on its own (build.py: the
    #: miscompiled aliasing checks; `omp simd` loops have none). Transcendental-heavy loops
    #: (sigmoid, tanh) run ~1.4x faster.
    simd = " simd simdlen(16)"

    def loop_pragmas(self, loop: ir.Loop) -> list[str]:
        threaded, cond = self.threaded(loop)
        reduce = "".join(f" reduction({op}:{name})" for op, name in loop.reduce)
        if threaded:
            return ["#pragma omp parallel for" + (self.simd if loop.vector else "")
                    + (f" collapse({loop.collapse})" if loop.collapse > 1 else "") + reduce
                    + (f" if(parallel: {cond})" if cond else "")]  # (a bare `if` also
            # applies to `simd` (OpenMP 5): below the threshold the loop ran unvectorized)
        if loop.vector:
            return ["#pragma omp" + self.simd + reduce]
        return []

    def subprogram(self, s: ir.Subprogram) -> list[str]:
        """A scan body's step: a context of its own over the tables ``s`` points at."""
        def table(items: list[str]) -> str:
            return "{" + (", ".join(items) or "NULL") + "}"

        run = f"{s.name}_step(&sub, NULL)"
        return [
            "{",
            f"    void *const sub_feeds[] = {table([f'(void *)({self.expr(p)})' for p in s.feeds])};",
            f"    void *const sub_outs[] = {table([f'(void *)({self.expr(p)})' for p in s.outs])};",
            f"    const void *const sub_consts[] = {table([f'g->consts[{i}]' for i in s.consts])};",
            f"    char *sub_arena = (char *)g->ws + ({self.expr(s.offset)});",
            f"    const gc_ctx sub = {{N, step, sub_arena, sub_arena + {s.name}_planned_bytes(N), "
            f"{s.name}_workspace_bytes(N), sub_feeds, NULL, sub_consts, sub_outs, g->err}};",
            f"    if ({run}) return 1;" if s.can_fail else f"    {run};",
            "}",
        ]

    def scratch(self, s: ir.Scratch) -> list[str]:
        t = self.ctype(s.dtype)
        at = "" if s.offset == ir.ZERO else f" + {self.expr(s.offset)}"
        return [f"{t} *{s.name} = ({t} *)g->ws{at};"]

    def _format(self, parts) -> str:
        """The printf arguments (format literal first) of a message's ``parts``: text and
        integer expressions."""
        fmt, args = "", []
        for part in parts:
            if isinstance(part, str):  # (a NUL would end the format: shown as \0)
                fmt += part.replace("%", "%%").replace("\0", "\\0")
            else:
                fmt += "%lld"
                args.append(f", (long long)({self.expr(part)})")
        return c_string(fmt) + "".join(args)

    def fail(self, s: ir.Fail) -> list[str]:
        return [f"snprintf(g->err, {ERR_BYTES}, {self._format(s.parts)});", "return 1;"]

    #: graphc dtype -> the helper of kernels/debug.h that ends a print line for its elements
    print_helpers = {"float32": "gc_print_summary_f32", "float64": "gc_print_summary_f64",
                     "int32": "gc_print_summary_i32", "int64": "gc_print_summary_i64",
                     "bool": "gc_print_summary_u8"}

    def print_line(self, s: ir.Print) -> list[str]:
        helper = self.print_helpers[s.data.buf.dtype]
        return [f"printf({self._format(s.parts)});",
                f"{helper}({self.expr(s.data)}, {self.expr(s.count)}, {int(s.summarize)});"]

    def template_name(self, call: ir.TemplateCall, suffix: str = "") -> str:
        return f"gc_{'s' if call.dtype == 'float32' else 'd'}{call.fn}{suffix}"

    def _shape(self, call: ir.TemplateCall) -> list[str]:
        struct = TEMPLATE_FUNCTIONS[call.fn][0]
        if struct is None:
            return []
        return [f"const {struct} shape = {{{', '.join(self.expr(v) for _, v in call.shape)}}};"]

    def template_call(self, call: ir.TemplateCall) -> list[str]:
        struct, takes_epilogue, _ = TEMPLATE_FUNCTIONS[call.fn]
        lines = self._shape(call)
        args = (["&shape"] if struct else []) + [self.expr(a) for a in call.args]
        if call.workspace:
            args += ["g->ws", "g->ws_bytes"]
        if takes_epilogue:
            epi = call.epilogue
            if epi is not None:
                owns = int(epi.result is None)
                lines.append(f"const gc_epilogue epi = {{{epi.name}_tile, {owns}, g}};")
            args.append("&epi" if epi is not None else "NULL")
        text = f"{self.template_name(call)}({', '.join(args)});"
        return ["{"] + ["    " + ln for ln in lines] + ["    " + text, "}"] if lines else [text]

    def workspace_exprs(self, call: ir.TemplateCall) -> list[ir.Expr]:
        """The expressions :meth:`workspace_size` renders."""
        struct, _, how = TEMPLATE_FUNCTIONS[call.fn]
        shape = [v for _, v in call.shape] if struct else []
        return shape + ([] if how == "shape" else [call.args[i] for i in how])

    def workspace_size(self, call: ir.TemplateCall) -> list[str]:
        """Lines that set ``w`` to the workspace bytes ``call`` needs."""
        how = TEMPLATE_FUNCTIONS[call.fn][2]
        if how == "shape":
            args = "&shape"
        else:
            args = ", ".join(self.expr(call.args[i]) for i in how)
        return self._shape(call) + [f"w = {self.template_name(call, '_workspace_size')}({args});"]
