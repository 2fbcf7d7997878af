"""The ``symgate`` command: list, show, build, export and check cells, compare them, measure their
gradient flow, and manage the build cache.

CELL is a built-in name (``symgate list``) or a path to a ``.cell`` file. Errors in the user's
input print one clear message and exit with status 2; a failed gradient check exits with 1. Any
other exception is a bug in symgate: one line saying so and status 3 (``SYMGATE_DEBUG=1`` shows
the traceback). A closed pipe (``symgate show lstm | head``) ends the command quietly; Ctrl-C
prints one line and exits with status 130, as a shell expects of an interrupted command.
The work is done by the modules named in each command; this one only reads the command line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
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
from .frontend.functions import matrix_axes
from .inspect.compare import compare
from .inspect.flow import flow_csv, flow_table, measure_flow
from .inspect.forget_gate import forget_bias_problem
from .inspect.plot import plot_flow, plot_path
from .inspect.step_source import full_file_command, step_listing
from .jit import cache, housekeeping
from .pipeline import build, generate
from .symbolic.derive import derive
from .symbolic.operators import MATRIX_LEGEND
from .verify.gradcheck import gradcheck

DEBUG_VARIABLE = "SYMGATE_DEBUG"
CELL_HELP = "a built-in cell's name or the path of a .cell file"
MIN_SUMMARY_WIDTH = 40  # `symgate list` wraps descriptions to the terminal, but never narrower than this
STRICT_HELP = "treat warnings (a parameter spelled like a declared name, or named pi, e, t) as errors"


DESCRIPTION = (
    "Turn a recurrent cell written as equations into its derived backward pass, compiled C kernels "
    "for NumPy and PyTorch, and a gradient check; show the equations and the generated C, export a "
    "standalone C library, and measure how the gradient flows through time. CELL is a built-in name "
    "(see `symgate list`) or the path of a .cell file; `symgate COMMAND --help` describes each command."
)

EXAMPLES = """\
examples:
  symgate show lstm                    equations, shapes and the backward pass
  symgate check my_cell.cell           gradient-check a cell of your own
  symgate build lstm --dtype float32   compile one kernel, say where it is cached

exit status: 0 ok, 1 a gradient check or cache check failed, 2 bad input,
3 a bug in symgate, 130 interrupted (Ctrl-C)."""


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except SymgateError as err:
        print(f"symgate: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symgate ... | head` closed the pipe: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error flushing stdout at exit
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line and the status a shell gives a command killed by SIGINT
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


class _HelpFormatter(argparse.HelpFormatter):
    """Help as ``git`` and ``pip`` print it: descriptions wrapped a paragraph at a time, indented blocks
    (the examples) kept as written, and every option's default after its help, as
    ``ArgumentDefaultsHelpFormatter`` shows it; options without a default (flags, optional values)
    and help texts that state their default themselves are left as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(
            paragraph if "\n  " in paragraph else fill(paragraph, width, indent) for paragraph in text.split("\n\n")
        )

    def _get_help_string(self, action: argparse.Action) -> str | None:
        no_default = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if no_default or not action.option_strings or "(default" in (action.help or ""):
            return action.help
        return f"{action.help or ''} (default: %(default)s)"


def _command(
    commands: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A subcommand: ``summary`` is its line in the parent's help, ``description`` heads its own ``--help``."""
    return commands.add_parser(name, help=summary, description=description, formatter_class=_HelpFormatter)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symgate", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"symgate {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    listing = _command(
        commands,
        "list",
        "list the built-in cells",
        "List the built-in cells, each with the first sentence of its description. Any of these names "
        "can be given where a command takes a CELL; `symgate show NAME` prints the cell's equations and source.",
    )
    listing.set_defaults(run=_list)

    show = _command(
        commands,
        "show",
        "equations, parameter shapes and the derived backward pass",
        "Print a cell's equations, the shapes of its parameters and the backward pass symgate derives "
        "from them; or, instead, their LaTeX (--latex), every step Jacobian (--jacobian), or the generated "
        "C of one step (--c; with --full, the whole generated file).",
    )
    show.add_argument("cell", metavar="CELL", help=CELL_HELP)
    show.add_argument("--strict", action="store_true", help=STRICT_HELP)
    form = show.add_mutually_exclusive_group()
    form.add_argument("--latex", action="store_true", help="print LaTeX instead of Unicode text")
    form.add_argument("--c", action="store_true", help="print the generated C of one step (float64)")
    show.add_argument("--full", action="store_true", help="with --c: the whole generated file")
    show.add_argument(
        "--jacobian", action="store_true", help="print every step Jacobian block ∂s'/∂r instead (with --latex: LaTeX)"
    )
    show.set_defaults(run=_show)

    build_cmd = _command(
        commands,
        "build",
        "generate and compile a cell's kernels",
        "Generate a cell's C kernels (forward and backward pass), compile them and store them in the "
        "kernel cache, saying where; with --out, also write the C source and headers, to read or to "
        "compile elsewhere. Python code builds the same kernels on first use: this command builds them ahead.",
    )
    build_cmd.add_argument("cell", metavar="CELL", help=CELL_HELP)
    build_cmd.add_argument("--dtype", choices=[*REAL_DTYPES, "both"], default="both", help="the kernels' precision")
    build_cmd.add_argument(
        "--out", type=Path, metavar="DIR", help="also write the C source, its header and symgate_runtime.h here"
    )
    build_cmd.set_defaults(run=_build)

    export_cmd = _command(
        commands,
        "export",
        "write a standalone C99 library of a cell (.c, .h, README, example program)",
        "Write a cell as a standalone C99 library that needs neither Python nor symgate: its source, "
        "header, a README and an example program with the command that builds it. With --params, "
        "trained parameters are baked in and the library does inference only.",
    )
    export_cmd.add_argument("cell", metavar="CELL", help=CELL_HELP)
    export_cmd.add_argument("--dtype", choices=REAL_DTYPES, default="float64", help="the library's precision")
    export_cmd.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="the directory to write")
    export_cmd.add_argument(
        "--params", type=Path, metavar="FILE.npz", help="bake these trained parameters in: an inference-only library"
    )
    export_cmd.set_defaults(run=_export)

    check = _command(
        commands,
        "check",
        "gradient-check cells; exit status 1 on failure",
        "Check that a cell's compiled backward pass computes the gradient of its forward pass: against "
        "central differences and along random directions in float64, and the float32 kernel against the "
        "float64 one. Prints a report per cell (one line each when several are checked); exit status 1 "
        "if any check fails.",
    )
    check.add_argument("cells", metavar="CELL", nargs="*", help=CELL_HELP + "; several may be given")
    check.add_argument("--all", action="store_true", help="check every built-in cell")
    check.add_argument("--strict", action="store_true", help=STRICT_HELP)
    check.add_argument("--sizes", help="dimension sizes, e.g. D=3,H=4 (default: 3, 4, 5, ... in order)")
    check.add_argument("--steps", type=int, default=5, help="sequence length")
    check.add_argument("--batch", type=int, default=2, help="sequences in the batch")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs and parameters")
    check.add_argument("--verbose", action="store_true", help="print every cell's full table, not one line each")
    check.add_argument(
        "--complex-step",
        action="store_true",
        help="also check the gradients against complex steps, to near machine precision (builds a complex kernel)",
    )
    check.set_defaults(run=_check)

    flow = _command(
        commands,
        "flow",
        "measure how fast the gradient of the last state falls with distance",
        "Measure, on random sequences, how the gradient of the last state with respect to the state k "
        "steps earlier falls with k: a table per distance (also written as CSV) and a plot (which needs "
        "matplotlib). Several cells are compared side by side.",
    )
    flow.add_argument("cells", metavar="CELL", nargs="+", help=CELL_HELP + "; several may be given")
    flow.add_argument("--steps", type=int, default=100, help="sequence length T")
    flow.add_argument("--sizes", help="dimension sizes, e.g. D=16,H=64 (default: 32 each, 8 for a matrix state's)")
    flow.add_argument("--samples", type=int, default=4, help="random sequences per cell")
    flow.add_argument("--seed", type=int, default=0, help="seed of the random sequences and parameters")
    flow.add_argument("--scale", type=float, default=1.0, help="multiply every initial parameter by this")
    flow.add_argument(
        "--forget-bias", type=float, help="total forget-gate bias, for the cells that have one (default: as drawn)"
    )
    flow.add_argument(
        "--out",
        type=Path,
        default=Path("flow.png"),
        help="the plot (.png, .svg or .pdf); the table goes beside it: .csv",
    )
    flow.set_defaults(run=_flow)

    diff = _command(
        commands,
        "diff",
        "which declarations, equations and backward terms two cells differ in",
        "Compare two cells: the declarations only one of them has, the equations that differ and how, "
        "and the terms of the derived backward pass that one adds or drops.",
    )
    diff.add_argument("first", metavar="CELL_A", help=CELL_HELP)
    diff.add_argument("second", metavar="CELL_B", help=CELL_HELP)
    diff.set_defaults(run=_diff)

    kept = _command(
        commands,
        "cache",
        "list, verify or clear the built kernels in the cache",
        "List, verify or clear the compiled kernels in the cache: $SYMGATE_CACHE_DIR, else "
        "$XDG_CACHE_HOME/symgate (~/.cache/symgate). A bad entry is never loaded: the next build replaces it.",
    )
    actions = kept.add_subparsers(required=True, metavar="ACTION")
    entries = _command(actions, "list", "every entry: cell, dtype, size, age, status", "List every entry of the cache.")
    entries.set_defaults(run=_cache_list)
    verify = _command(
        actions,
        "verify",
        "check every entry against its checksums; exit status 1 if any is bad",
        "Check every entry against the checksums written when it was built; exit status 1 if any is bad.",
    )
    verify.set_defaults(run=_cache_verify)
    clear = _command(
        actions,
        "clear",
        "remove every entry (and builds left by killed processes)",
        "Remove every entry, or one cell's, and the builds left behind by killed processes; files "
        "symgate did not make are left alone.",
    )
    clear.add_argument("--cell", metavar="NAME", help="remove only this cell's entries")
    clear.set_defaults(run=_cache_clear)
    return parser


def _list(args: argparse.Namespace) -> int:
    names = cells.names()
    column = max(map(len, names)) + 2
    width = max(shutil.get_terminal_size().columns - column, MIN_SUMMARY_WIDTH)
    for name in names:
        lines = textwrap.wrap(_summary(cells.get(name).doc), width, break_on_hyphens=False) or [""]
        print(f"{name:<{column}}{lines[0]}".rstrip())
        for line in lines[1:]:
            print(" " * column + line)
    return 0


def _summary(doc: str) -> str:
    """The first sentence of a cell's description: its lines up to the first that ends one."""
    summary = []
    for line in doc.splitlines():
        if not line.strip():
            break
        summary.append(line.strip())
        if line.rstrip().endswith("."):
            break
    return " ".join(summary)


def _show(args: argparse.Namespace) -> int:
    if args.full and not args.c:
        raise SymgateError(f"--full goes with --c: `{full_file_command(args.cell)}` prints the whole generated C")
    if args.jacobian and args.c:
        raise SymgateError("--jacobian prints equations, --c the generated C: choose one")
    cell = _resolve(args.cell, args.strict)
    if args.c:
        print(generate(cell, "float64").c_source if args.full else step_listing(cell, given_as=args.cell), end="")
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
        if any(matrix_axes(size) for size in cell.sizes.values()):
            print(*MATRIX_LEGEND, sep="\n")
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
