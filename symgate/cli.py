"""The ``symgate`` command: list, show, build, export and check cells, compare them, measure their
gradient flow, and manage the build cache.

CELL is a built-in name (``symgate list``) or a path to a ``.cell`` file. Errors in the user's
input print one clear message and exit with status 2; a failed gradient check exits with 1. Any
other exception is a bug in symgate: one line saying so and status 3 (``SYMGATE_DEBUG=1`` shows
the traceback). A closed pipe (``symgate show lstm | head``) ends the command quietly.
The work is done by the modules named in each command; this one only reads the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from ._version import __version__
from .codegen.render import RUNTIME_HEADER, runtime_header
from .dtypes import REAL_DTYPES
from .errors import MissingExtraError, SymgateError, SymgateWarning
from .export import export
from .frontend import cells
from .frontend.cell import Cell
from .inspect.compare import compare
from .inspect.flow import flow_csv, flow_table, measure_flow
from .inspect.forget_gate import forget_bias_problem
from .inspect.plot import plot_flow, plot_path
from .inspect.step_source import step_listing
from .jit import cache, housekeeping
from .pipeline import build, generate
from .symbolic.derive import derive
from .verify.gradcheck import gradcheck

DEBUG_VARIABLE = "SYMGATE_DEBUG"
STRICT_HELP = "treat warnings (a parameter spelled like a declared name, or named pi, e, t) as errors"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SymgateError as err:
        print(f"symgate: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symgate ... | head` closed the pipe: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error flushing stdout at exit
        return 0
    except KeyboardInterrupt:
        print("symgate: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in symgate, not in the input: one line, the traceback on request
        if os.environ.get(DEBUG_VARIABLE):
            raise
        print(
            f"symgate: internal error (a bug in symgate; please report it with the command and the cell): "
            f"{type(err).__name__}: {err}; set {DEBUG_VARIABLE}=1 for the traceback",
            file=sys.stderr,
        )
        return 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symgate", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"symgate {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the built-in cells")
    listing.set_defaults(run=_list)

    show = commands.add_parser("show", help="equations, parameter shapes and the derived backward pass")
    show.add_argument("cell", metavar="CELL")
    show.add_argument("--strict", action="store_true", help=STRICT_HELP)
    form = show.add_mutually_exclusive_group()
    form.add_argument("--latex", action="store_true", help="print LaTeX instead of Unicode text")
    form.add_argument("--c", action="store_true", help="print the generated C of one step (float64)")
    show.add_argument("--full", action="store_true", help="with --c: the whole generated file")
    show.add_argument(
        "--jacobian", action="store_true", help="print every step Jacobian block ∂s'/∂r instead (with --latex: LaTeX)"
    )
    show.set_defaults(run=_show)

    build_cmd = commands.add_parser("build", help="generate and compile a cell's kernels")
    build_cmd.add_argument("cell", metavar="CELL")
    build_cmd.add_argument("--dtype", choices=[*REAL_DTYPES, "both"], default="both")
    build_cmd.add_argument("--out", type=Path, help="also write the C source, its header and symgate_runtime.h here")
    build_cmd.set_defaults(run=_build)

    export_cmd = commands.add_parser(
        "export", help="write a standalone C99 library of a cell (.c, .h, README, example program)"
    )
    export_cmd.add_argument("cell", metavar="CELL")
    export_cmd.add_argument("--dtype", choices=REAL_DTYPES, default="float64", help="default float64")
    export_cmd.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="the directory to write")
    export_cmd.add_argument(
        "--params", type=Path, metavar="FILE.npz", help="bake these trained parameters in: an inference-only library"
    )
    export_cmd.set_defaults(run=_export)

    check = commands.add_parser("check", help="gradient-check cells; exit status 1 on failure")
    check.add_argument("cells", metavar="CELL", nargs="*")
    check.add_argument("--all", action="store_true", help="check every built-in cell")
    check.add_argument("--strict", action="store_true", help=STRICT_HELP)
    check.add_argument("--sizes", help="dimension sizes, e.g. D=3,H=4 (default: 3, 4, 5, ... in order)")
    check.add_argument("--steps", type=int, default=5)
    check.add_argument("--batch", type=int, default=2)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--verbose", action="store_true", help="print every cell's full table, not one line each")
    check.add_argument(
        "--complex-step",
        action="store_true",
        help="also check the gradients against complex steps, to near machine precision (builds a complex kernel)",
    )
    check.set_defaults(run=_check)

    flow = commands.add_parser("flow", help="measure how fast the gradient of the last state falls with distance")
    flow.add_argument("cells", metavar="CELL", nargs="+")
    flow.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    flow.add_argument("--sizes", help="dimension sizes, e.g. D=16,H=64 (default: 32 each)")
    flow.add_argument("--samples", type=int, default=4, help="random sequences per cell (default 4)")
    flow.add_argument("--seed", type=int, default=0)
    flow.add_argument("--scale", type=float, default=1.0, help="multiply every initial parameter by this")
    flow.add_argument(
        "--forget-bias", type=float, help="total forget-gate bias, for the cells that have one (default: as drawn)"
    )
    flow.add_argument(
        "--out", type=Path, default=Path("flow.png"), help="the plot (default flow.png); the table goes beside it, .csv"
    )
    flow.set_defaults(run=_flow)

    diff = commands.add_parser("diff", help="which declarations, equations and backward terms two cells differ in")
    diff.add_argument("first", metavar="CELL_A")
    diff.add_argument("second", metavar="CELL_B")
    diff.set_defaults(run=_diff)

    kept = commands.add_parser("cache", help="list, verify or clear the built kernels in the cache")
    actions = kept.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("list", help="every entry: cell, dtype, size, age, status").set_defaults(run=_cache_list)
    verify = actions.add_parser("verify", help="check every entry against its checksums; exit status 1 if any is bad")
    verify.set_defaults(run=_cache_verify)
    clear = actions.add_parser("clear", help="remove every entry (and builds left by killed processes)")
    clear.add_argument("--cell", metavar="NAME", help="remove only this cell's entries")
    clear.set_defaults(run=_cache_clear)
    return parser


def _list(args: argparse.Namespace) -> int:
    for name in cells.names():
        summary = cells.get(name).doc.splitlines()
        print(f"{name:<16} {summary[0] if summary else ''}")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.full and not args.c:
        raise SymgateError("--full goes with --c: `symgate show CELL --c --full` prints the whole generated C")
    if args.jacobian and args.c:
        raise SymgateError("--jacobian prints equations, --c the generated C: choose one")
    cell = _resolve(args.cell, args.strict)
    if args.c:
        print(generate(cell, "float64").c_source if args.full else step_listing(cell), end="")
        return 0
    derivation = derive(cell)
    if args.jacobian:
        blocks = derivation.jacobians()
        if args.latex:
            print("\n".join(block.latex() for block in blocks))
            return 0
        print(f"step Jacobians of {cell.name}: ∂s'/∂r for every new state s' and previous state r. Each block is")
        print("diag(d) + Σ diag(a) · M · J: a diagonal (the path that meets no matrix) plus products with")
        print("parameter matrices M, where J, of the same form, is the Jacobian of the vector M multiplies.")
        for block in blocks:
            print()
            print(block)
        return 0
    if args.latex:
        print(cell.latex())
        print(derivation.latex())
        return 0
    print(cell.describe())
    print()
    print(derivation)
    return 0


def _build(args: argparse.Namespace) -> int:
    cell = cells.resolve(args.cell)
    dtypes = list(REAL_DTYPES) if args.dtype == "both" else [args.dtype]
    for dtype in dtypes:
        start = time.perf_counter()
        kernel = build(cell, dtype)
        elapsed = time.perf_counter() - start
        print(f"{cell.name} {dtype}: built in {elapsed:.2f} s, cached at {kernel.entry.path}")
        if args.out:
            source = generate(cell, dtype)
            args.out.mkdir(parents=True, exist_ok=True)
            files = {f"{source.stem}.c": source.c_source, f"{source.stem}.h": source.header}
            files[RUNTIME_HEADER] = runtime_header().read_text(encoding="utf-8")  # the .c includes it
            for name, text in files.items():
                target = args.out / name
                target.write_text(text)
                print(f"  wrote {target}")
    return 0


def _export(args: argparse.Namespace) -> int:
    cell = cells.resolve(args.cell)
    library = export(cell, args.out, dtype=args.dtype, params=args.params)
    kind = "inference only, parameters baked in" if args.params else "forward, backward, infer, step"
    print(f"{cell.name} {args.dtype} ({kind}): wrote {', '.join(library.files)} to {args.out}")
    print(f"  build the example: cd {args.out} && {library.build_command}")
    return 0


def _check(args: argparse.Namespace) -> int:
    names = cells.names() if args.all else args.cells
    if not names:
        raise SymgateError("name at least one CELL, or pass --all")
    checked = [_resolve(name, args.strict) for name in names]
    given = _given_sizes(args.sizes, {d for cell in checked for d in cell.dims})
    one_line = len(checked) > 1 and not args.verbose
    failed = 0
    started = time.perf_counter()
    for cell in checked:
        start = time.perf_counter()
        sizes = _sizes(cell, given)
        report = gradcheck(
            cell,
            sizes,
            steps=args.steps,
            batch=args.batch,
            seed=args.seed,
            float32=True,
            complex_step=args.complex_step,
        )
        elapsed = time.perf_counter() - start
        failed += not report.ok
        if one_line and report.ok:
            shown = " ".join(f"{d}={n}" for d, n in sizes.items())
            complex_step = f"complex step {report.complex_step.max_rel_error:.1e}   " if report.complex_step else ""
            print(
                f"ok      {cell.name:<28} {shown:<14} float64 max rel err {report.max_rel_error:.1e}   "
                f"float32 vs float64 {report.float32_rel_error:.1e}   {complex_step}{elapsed:5.2f} s"
            )
        else:
            print(report)
            print(f"  ({elapsed:.2f} s)\n")
    if len(checked) > 1:
        print(f"{len(checked) - failed} passed, {failed} failed in {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def _flow(args: argparse.Namespace) -> int:
    checked = [cells.resolve(name) for name in args.cells]
    given = _given_sizes(args.sizes, {d for cell in checked for d in cell.dims})
    plot_path(args.out)  # refused before the measurement, not after
    problems = {cell.name: forget_bias_problem(cell) for cell in checked} if args.forget_bias is not None else {}
    if problems and all(problems.values()):
        raise SymgateError("--forget-bias: " + "; ".join(problems.values()))
    flows = []
    for cell in checked:
        if problems.get(cell.name):
            print(f"note: {problems[cell.name]}; it keeps its parameters as drawn")
        bias = None if problems.get(cell.name) else args.forget_bias
        flows.append(measure_flow(cell, args.steps, given, args.samples, args.seed, args.scale, bias))
    print(flow_table(flows))
    table = args.out.with_suffix(".csv")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(flow_csv(flows))
    except OSError as err:
        raise SymgateError(f"cannot write {table}: {err.strerror}") from err
    print(f"wrote {table} (every distance)")
    try:
        print(f"wrote {plot_flow(flows, args.out)}")
    except MissingExtraError as err:
        print(f"no plot: {err}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    print(compare(cells.resolve(args.first), cells.resolve(args.second)))
    return 0


def _cache_list(args: argparse.Namespace) -> int:
    root = cache.cache_dir()
    print(housekeeping.describe(housekeeping.entries(root), root, housekeeping.strays(root)))
    return 0


def _cache_verify(args: argparse.Namespace) -> int:
    root = cache.cache_dir()
    found, others = housekeeping.entries(root), housekeeping.strays(root)
    for entry in found:
        verdict = "ok " if entry.ok else f"BAD: {entry.problem}"
        print(f"{entry.cell:<24} {entry.dtype:<8} {entry.path.name:<44} {verdict}")
    for stray in others:
        print(f"{stray.path.name:<78} {housekeeping.stray_status(stray)}: {stray.problem}")
    bad = sum(not entry.ok for entry in found) + sum(stray.ours for stray in others)
    print(f"{len(found)} entries in {root}, {bad} bad")
    if bad or others:
        print(f"({housekeeping.HEALING_NOTE})")
    return 1 if bad else 0


def _cache_clear(args: argparse.Namespace) -> int:
    root = cache.cache_dir()
    cleared = housekeeping.clear(args.cell, root)
    which = f" of cell {args.cell}" if args.cell else ""
    freed = housekeeping.format_size(sum(e.size for e in cleared.removed))
    print(f"removed {len(cleared.removed)} entries{which} ({freed}) from {root}")
    untrusted = [(e.path, e.problem) for e in cleared.removed if not e.ok]
    for path, problem in untrusted + [(s.path, s.problem) for s in cleared.debris]:
        print(f"  removed {path.name}, which could not be trusted: {problem}")
    for stray in cleared.left:
        print(f"  left {stray.path.name}: {stray.problem}")
    if untrusted or cleared.debris:
        print("  (a symbolic link is removed itself, never what it points to)")
    return 1 if any(stray.ours for stray in cleared.left) else 0


def _resolve(name: str, strict: bool) -> Cell:
    """The cell ``name`` names; its warnings are printed to stderr as ``symgate: warning: ...``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SymgateWarning)
        cell = cells.resolve(name, strict=strict)
    for warning in caught:
        if issubclass(warning.category, SymgateWarning):
            print(f"symgate: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return cell


def _given_sizes(text: str | None, dims: set[str]) -> dict[str, int]:
    """Sizes from ``D=3,H=4``; each must name a dimension of at least one checked cell."""
    given = {}
    for item in filter(None, (text or "").split(",")):
        dim, _, value = (part.strip() for part in item.partition("="))
        if dim not in dims or not value.isdigit():
            raise SymgateError(f"--sizes: cannot use {item!r}; dimensions: {', '.join(sorted(dims))}")
        given[dim] = int(value)
    return given


def _sizes(cell: Cell, given: dict[str, int]) -> dict[str, int]:
    """The given sizes of the cell's dimensions; the others get distinct defaults 3, 4, 5, ..."""
    return {dim: given.get(dim, 3 + index) for index, dim in enumerate(cell.dims)}


if __name__ == "__main__":
    sys.exit(main())
