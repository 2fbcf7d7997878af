"""C identifiers for everything a kernel names, unique and never clashing with C.

User names reach C only through this table. A name that is a C keyword, a libm function, a macro
some header or compiler mode defines (``linux``, ``M_PI``, ``HAVE_*``, ``Py*``) or one of
symgate's loop variables, or that starts with a prefix symgate keeps for its own names (``sg_``,
``SG_``), is mangled by appending ``_`` (``int`` -> ``int_``), the same way every time, so the
generated C is deterministic and always compiles.
"""

from __future__ import annotations

import re

C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "bool",
        "true",
        "false",
        "complex",
        "imaginary",
        "alignas",
        "alignof",
        "noreturn",
        "static_assert",
        "thread_local",
        "NULL",
        "main",
        "size_t",
        "ptrdiff_t",
        "I",
    ]
)
LIBM = frozenset(
    [
        "acos",
        "asin",
        "atan",
        "atan2",
        "ceil",
        "cos",
        "cosh",
        "exp",
        "exp2",
        "expm1",
        "fabs",
        "floor",
        "fmod",
        "frexp",
        "ldexp",
        "log",
        "log10",
        "log1p",
        "log2",
        "modf",
        "pow",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "copysign",
        "fmax",
        "fmin",
        "round",
        "trunc",
        "erf",
        "erfc",
        "tgamma",
        "lgamma",
        "hypot",
        "cbrt",
        "nan",
        "isnan",
        "isinf",
        "isfinite",
        "signbit",
        "INFINITY",
        "NAN",
        "HUGE_VAL",
        "memset",
        "memcpy",
        "printf",
    ]
)
LIBM_FLOAT = frozenset(name + "f" for name in LIBM if name.islower())
LIBM_COMPLEX = frozenset(
    ["c" + name for name in ("exp", "log", "pow", "sqrt", "abs", "arg", "imag", "real", "proj")]
    + ["c" + name for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh")]
    + ["ca" + name for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh")]
    + ["conj", "CMPLX"]
)
"""<complex.h>, which the complex-step kernels include (:mod:`symgate.verify.complex_step`)."""
TIME_LOOP_LOCALS = ("batch_sizes", "step_batch", "step_row", "previous_row", "all_rows")
"""The names of a pass's samples and rows at each step (sequences of different lengths)."""
KERNEL_LOCALS = frozenset(
    ["T", "B", "t", "sample", "unit", "row", "col", "n", "work", "uintptr_t", "NOTHROW", *TIME_LOOP_LOCALS]
)
"""Names the kernels and the headers they include declare outside the reserved prefixes (``NOTHROW``
is a macro of MKL's headers)."""
PREDEFINED = frozenset(
    [
        "linux",
        "unix",
        "i386",
        "i486",
        "i586",
        "i686",
        "x86_64",
        "amd64",
        "errno",
        "offsetof",
        "assert",
        "alloca",
        "stdin",
        "stdout",
        "stderr",
        "EOF",
        "NDEBUG",
        "BUFSIZ",
        "NULL",
        "CHAR_BIT",
        "INT_MAX",
        "INT_MIN",
        "SIZE_MAX",
        "PTRDIFF_MAX",
        "DBL_MAX",
        "FLT_MAX",
        "DBL_EPSILON",
        "FLT_EPSILON",
        "EXIT_SUCCESS",
        "EXIT_FAILURE",
        "MATH_ERRNO",
        "MATH_ERREXCEPT",
        "math_errhandling",
        "__int128",
        "typeof",
        "asm",
    ]
)
"""Names the compiler, libc or the Python headers define as macros or keywords in some mode."""
GENERATED_PREFIXES = ("sg_", "SG_", "SYMGATE_", "example_")
"""Every name symgate's templates and renderer make up starts with one of these (helpers ``sg_``,
macros ``SG_``, build switches ``SYMGATE_``, the example program's ``example_``): no user name
reaches C with them, so adding a helper can never break a cell that uses its name."""
RESERVED_PREFIXES = (
    *GENERATED_PREFIXES,
    *("M_", "FP_", "HUGE_", "HAVE_", "SIZEOF_", "WITH_", "ENABLE_", "USE_", "Py", "PY_", "_"),
    *("MKL_", "mkl_", "CBLAS_", "cblas_", "Cblas"),  # the BLAS headers' names
)
RESERVED = C_KEYWORDS | LIBM | LIBM_FLOAT | LIBM_COMPLEX | KERNEL_LOCALS | PREDEFINED

_SPELLING = (("'", "_next"), ("δ", "d_"), ("τ", "tmp"), ("ᵀ", "T"), ("@", "_"), ("(", "_"), (")", "_"))


def c_spelling(name: str) -> str:
    """The readable C form of a symbol name: ``h'`` -> ``h_next``, ``δ(W@x)`` -> ``d_W_x``."""
    for text, spelled in _SPELLING:
        name = name.replace(text, spelled)
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_")
    return name if re.match(r"[A-Za-z]", name) else "v_" + name


class CNames:
    """Hands out C identifiers: one per (kind, name), unique, reserved words avoided."""

    def __init__(self) -> None:
        self._taken: set[str] = set(RESERVED)
        self._given: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, name: str, pattern: str = "{}") -> str:
        key = (kind, name)
        if key not in self._given:
            candidate = pattern.format(c_spelling(name))
            while candidate in self._taken or (candidate.startswith(RESERVED_PREFIXES) and not candidate.endswith("_")):
                candidate += "_"
            self._taken.add(candidate)
            self._given[key] = candidate
        return self._given[key]
