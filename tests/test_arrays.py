"""Arrays are checked before C sees them: each bad one is refused naming the argument, and every
unusual but valid one (0-sized dimensions, T = 0, read-only memory, one array passed for several
arguments) gives exactly the results of the plain case."""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
from conftest import LSTM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgate as sg

SIZES = {"D": 3, "H": 4}


@pytest.fixture(scope="module")
def lstm():
    return sg.build(sg.parse(LSTM))


def arrays(kernel, sizes=SIZES, steps=5, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, sizes["D"]))
    init = {s: rng.uniform(-0.5, 0.5, (batch, sizes["H"])) for s in ("h", "c")}
    grads = {s: rng.standard_normal((steps, batch, sizes["H"])) for s in ("h", "c")}
    return x, kernel.init_params(sizes, seed=seed), init, grads


def results(kernel, x, params, init, grads) -> dict[str, np.ndarray]:
    run = kernel.forward(x, params, init)
    g = kernel.backward(run, grads)
    out = {f"state {n}": a for n, a in run.states.items()}
    out |= {f"grad {n}": a for n, a in g.params.items()} | {f"grad init {n}": a for n, a in g.init.items()}
    return out | {"grad x": g.inputs["x"]}


def assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def misaligned(a: np.ndarray) -> np.ndarray:
    raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
    out = raw.view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


# (what to change, the label the message must name, words it must contain)
FORWARD_CASES = [
    ("x", lambda a: a[:, :, :2].copy(), "params['W_f'] has shape (4, 3), expected (H, D) with D=2 (from x)"),
    ("x", lambda a: a[0], "x must be a 3-d array"),
    ("x", lambda a: a.astype(np.float32), "x has dtype float32 but this kernel is float64"),
    ("x", lambda a: a.astype(np.int64), "x has dtype int64"),
    ("x", lambda a: a.astype(np.float16), "x has dtype float16"),
    ("x", lambda a: a.astype(np.complex128), "x has dtype complex128"),
    ("x", lambda a: a.astype(object), "x has dtype object"),
    ("x", lambda a: a.astype(">f8"), "x is not in native byte order"),
    ("x", lambda a: a.transpose(1, 0, 2), "x must be C-contiguous"),
    ("x", lambda a: a[:, :, ::-1], "x must be C-contiguous"),
    ("x", lambda a: a[::-1], "x must be C-contiguous"),
    ("x", lambda a: np.repeat(a, 2, axis=1)[:, ::2], "x must be C-contiguous"),
    ("x", misaligned, "x is not aligned"),
    ("x", lambda a: np.ma.masked_array(a, mask=a > 0), "x is a masked array"),
    ("x", lambda a: a.tolist(), "x must be a 3-d array"),
    ("W_f", lambda a: a.T.copy(), "params['W_f'] has shape (3, 4)"),
    ("W_f", lambda a: np.asfortranarray(a), "params['W_f'] must be C-contiguous"),
    ("W_f", lambda a: a[::-1], "params['W_f'] must be C-contiguous"),
    ("W_f", lambda a: a.astype(">f8"), "params['W_f'] is not in native byte order"),
    ("W_f", lambda a: a.astype(np.float32), "params['W_f'] has dtype float32"),
    ("W_f", misaligned, "params['W_f'] is not aligned"),
    ("W_f", lambda a: a.tolist(), "params['W_f'] must be a NumPy array, not list"),
    ("b_f", lambda a: np.float64(a[0]), "params['b_f'] must be a NumPy array, not float64"),
    ("b_f", lambda a: np.array(a[0]), "params['b_f'] must have shape (H), got ()"),
    ("b_f", lambda a: a[:3].copy(), "params['b_f'] has shape (3,), expected (H) with H=4 (from params['W_f'])"),
    ("h", lambda a: a[:1].copy(), "init['h'] has shape (1, 4), expected (B, H) with B=2 (from x)"),
    ("h", lambda a: a[:, ::-1], "init['h'] must be C-contiguous"),
    ("h", lambda a: a.astype(">f8"), "init['h'] is not in native byte order"),
    ("h", lambda a: a[0], "init['h'] must have shape (B, H), got (4,)"),
]


@pytest.mark.parametrize(("which", "change", "words"), FORWARD_CASES, ids=[c[2][:45] for c in FORWARD_CASES])
def test_bad_forward_arrays_are_refused_naming_the_argument(lstm, which, change, words):
    x, params, init, _ = arrays(lstm)
    if which == "x":
        x = change(x)
    elif which in params:
        params = {**params, which: change(params[which])}
    else:
        init = {**init, which: change(init[which])}
    with pytest.raises(sg.ArrayError, match=re.escape(words)):
        lstm.forward(x, params, init)


BACKWARD_CASES = [
    (lambda g: {**g, "h": g["h"][:4].copy()}, "grads['h'] has shape (4, 2, 4), expected (T, B, H) with T=5"),
    (lambda g: {**g, "h": g["h"].astype(np.float32)}, "grads['h'] has dtype float32"),
    (lambda g: {**g, "c": g["c"].astype(">f8")}, "grads['c'] is not in native byte order"),
    (lambda g: {**g, "c": g["c"][::-1]}, "grads['c'] must be C-contiguous"),
    (lambda g: {**g, "c": g["c"].transpose(1, 0, 2)}, "grads['c'] has shape (2, 5, 4)"),
    (lambda g: {**g, "c": misaligned(g["c"])}, "grads['c'] is not aligned"),
    (lambda g: {**g, "y": g["h"]}, "grads has unknown names ['y']"),
    (lambda g: {"final": {"h": g["h"][0, :, :3].copy()}}, "grads['final']['h'] has shape (2, 3), expected (B, H)"),
    (lambda g: {"final": {"h": g["h"][0, :, ::-1]}}, "grads['final']['h'] must be C-contiguous"),
    (lambda g: {"final": {"h": g["h"][0].tolist()}}, "grads['final']['h'] must be a NumPy array, not list"),
    (lambda g: {"final": g["h"][0]}, "grads['final'] must be a dict, not ndarray"),
    (lambda g: {"final": {"q": g["h"][0]}}, "grads['final'] has unknown names ['q']"),
]


@pytest.mark.parametrize(("change", "words"), BACKWARD_CASES, ids=[c[1][:45] for c in BACKWARD_CASES])
def test_bad_backward_arrays_are_refused_naming_the_argument(lstm, change, words):
    x, params, init, grads = arrays(lstm)
    run = lstm.forward(x, params, init)
    with pytest.raises(sg.ArrayError, match=re.escape(words)):
        lstm.backward(run, change(grads))


@pytest.mark.parametrize(
    ("sizes", "words"),
    [
        ({"D": True, "H": 4}, "size of D must be a non-negative integer, got True"),
        ({"D": 3, "H": -1}, "size of H must be a non-negative integer, got -1"),
        ({"D": 3.0, "H": 4}, "size of D must be a non-negative integer, got 3.0"),
        ({"H": 4}, "sizes are missing for dimensions ['D']"),
    ],
)
def test_bad_sizes_are_refused(lstm, sizes, words):
    with pytest.raises(sg.ArrayError, match=re.escape(words)):
        lstm.init_params(sizes)


@pytest.mark.parametrize(
    ("shape", "words"),
    [((2**31, 0, 3), "T * B = 2147483648 * 0 is over 2147483647"), ((2**16, 2**16, 0), "T * B = 65536 * 65536")],
)
def test_extents_beyond_a_c_int_are_refused_before_allocating(lstm, shape, words):
    x = np.zeros(shape)  # no elements, so no memory: the sizes alone would overflow the kernel's ints
    with pytest.raises(sg.ArrayError, match=re.escape(words)):
        lstm.forward(x, lstm.init_params({"D": shape[2], "H": 4}))


@pytest.fixture(params=["loops", "blas"])
def both_paths(request, monkeypatch):
    """The kernel with generated loops for every product, or with BLAS for every product."""
    if request.param == "blas":
        if not sg.jit.toolchain.blas_flags():
            pytest.skip("scipy-openblas32 is not installed")
        monkeypatch.setenv("SYMGATE_BLAS_MIN", "0")
    else:
        monkeypatch.setenv("SYMGATE_BLAS_MIN", str(2**62))
    return sg.build(sg.parse(LSTM))


@pytest.mark.parametrize("missing", ["D", "H", "B", "T", "T and B"])
def test_zero_sized_dimensions_give_exact_results_and_no_blas_complaint(both_paths, capfd, missing):
    k = both_paths
    sizes = {"D": 0 if missing == "D" else 3, "H": 0 if missing == "H" else 4}
    steps, batch = (0 if "T" in missing else 5), (0 if "B" in missing else 2)
    x, params, init, grads = arrays(k, sizes, steps, batch)
    got = results(k, x, params, init, grads)
    assert got["grad x"].shape == (steps, batch, sizes["D"]) and got["state h"].shape == (steps, batch, sizes["H"])
    assert all(np.all(np.isfinite(a)) for a in got.values())
    if missing == "D":  # as if x had one unit, always 0, and W a column of its own
        wide = {**params, **{n: np.ones((4, 1)) for n in ("W_i", "W_f", "W_g", "W_o")}}
        same = results(k, np.zeros((steps, batch, 1)), wide, init, grads)
        for name, value in got.items():
            expected = same[name][..., :0] if name in ("grad x", *(f"grad W_{g}" for g in "ifgo")) else same[name]
            np.testing.assert_allclose(value, expected, rtol=1e-13, atol=1e-15, err_msg=name)
    elif missing == "H":  # nothing depends on x: its gradient is zero
        assert not got["grad x"].any()
    elif missing in ("B", "T and B"):  # no samples: every parameter gradient is an empty sum
        assert not any(got[f"grad {p.name}"].any() for p in k.cell.params)
    else:  # T = 0: the final state is the initial one, and its gradient passes straight through
        run = k.forward(x, params, init)
        np.testing.assert_array_equal(run.final["c"], init["c"])
        back = k.backward(run, {"final": {"c": init["h"]}})
        np.testing.assert_array_equal(back.init["c"], init["h"])
        assert not back.init["h"].any() and not any(a.any() for a in back.params.values())
    assert capfd.readouterr().err == ""  # BLAS says nothing about zero extents


def test_one_array_passed_for_several_arguments_gives_the_results_of_copies():
    k = sg.build(sg.parse(LSTM))
    x, params, init, grads = arrays(k, {"D": 4, "H": 4})
    shared, state, dh = params["U_f"], init["h"], grads["h"]
    aliased = {**params, "W_f": shared, "W_i": shared, "U_i": shared}
    copied = {n: a.copy() for n, a in aliased.items()}
    expected = results(k, x, copied, {"h": state.copy(), "c": state.copy()}, {"h": dh.copy(), "c": dh.copy()})
    assert_same(results(k, x, aliased, {"h": state, "c": state}, {"h": dh, "c": dh}), expected)
    run = k.forward(x, aliased, {"h": state, "c": state}, copy=False)  # the run shares the caller's arrays
    assert run.params["W_f"] is run.params["U_i"]
    g = k.backward(run, {"h": dh, "c": dh})
    np.testing.assert_array_equal(g.params["U_i"], expected["grad U_i"])
    np.testing.assert_array_equal(g.init["c"], expected["grad init c"])


def test_one_array_for_two_inputs_of_a_cell():
    k = sg.build(sg.parse("cell two\ninput x: D, u: D\nstate h: H\nh' = tanh(W @ x + V @ u + U @ h)\n"))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 3))
    params = k.init_params({"D": 3, "H": 5})
    dh = rng.standard_normal((4, 2, 5))
    alias = k.backward(k.forward({"x": x, "u": x}, params), {"h": dh})
    copies = k.backward(k.forward({"x": x.copy(), "u": x.copy()}, params), {"h": dh})
    np.testing.assert_array_equal(alias.inputs["x"], copies.inputs["x"])
    np.testing.assert_array_equal(alias.inputs["u"], copies.inputs["u"])
    assert not np.shares_memory(alias.inputs["x"], alias.inputs["u"])


def test_a_cell_without_inputs_is_refused_naming_what_is_missing():
    k = sg.build(sg.parse("cell free\nstate h: H\nh' = tanh(U @ h)\n"))
    with pytest.raises(sg.ArrayError, match="cell free has no inputs: nothing gives the number of steps"):
        k.forward({}, {"U": np.eye(3)}, {"h": np.zeros((2, 3))})


def test_read_only_memory_is_read_and_never_written(lstm, tmp_path):
    x, params, init, grads = arrays(lstm)
    expected = results(lstm, x, params, init, grads)
    np.savez(tmp_path / "a.npz", x=x, **params, **{f"init_{n}": a for n, a in init.items()})
    mapped = {}
    for name in ["x", *params, "init_h", "init_c"]:
        np.save(tmp_path / f"{name}.npy", np.load(tmp_path / "a.npz")[name])
        mapped[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")  # a write would be a segfault
    got = results(
        lstm,
        mapped["x"],
        {n: mapped[n] for n in params},
        {"h": mapped["init_h"], "c": mapped["init_c"]},
        {n: _read_only(a) for n, a in grads.items()},
    )
    assert_same(got, expected)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def test_a_run_cannot_be_changed_pickled_or_copied_but_its_arrays_can(lstm):
    x, params, init, _ = arrays(lstm)
    run = lstm.forward(x, params, init)
    for attribute in ("segment", "states", "kernel", "tape"):
        with pytest.raises(AttributeError):
            setattr(run, attribute, None)
    for copy_it in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be pickled or copied; pickle or copy its arrays"):
            copy_it(run)
    kept = pickle.loads(pickle.dumps(run.states))
    np.testing.assert_array_equal(kept["h"], run.states["h"])
    assert repr(run) == "<symgate.Run T=5, B=2, D=3, H=4>"


def test_runs_are_read_only_and_gradients_are_fresh_arrays(lstm):
    x, params, init, grads = arrays(lstm)
    run = lstm.forward(x, params, init)
    for group in (run.states, run.tape, run.inputs, run.params, run.init):
        for name, a in group.items():
            with pytest.raises(ValueError, match="read-only"):
                a[...] = 0
            assert not any(np.shares_memory(a, b) for b in [x, *params.values(), *init.values()]), name
    g = lstm.backward(run, grads)
    outputs = [*g.params.values(), *g.inputs.values(), *g.init.values()]
    everything = [*run.states.values(), *run.tape.values(), *grads.values(), *params.values(), x]
    for a in outputs:
        assert a.flags.writeable and a.flags.c_contiguous
        assert not any(np.shares_memory(a, b) for b in everything + [o for o in outputs if o is not a])


# -- the same, as a property: any layout of any argument is refused naming it, or changes nothing

LAYOUTS = {
    "copy": lambda a: a.copy(),
    "reversed": lambda a: a[::-1],
    "transposed": lambda a: a.T,
    "fortran": lambda a: np.asfortranarray(a),
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "misaligned": misaligned,
    "big-endian": lambda a: a.astype(">f8"),
    "float32": lambda a: a.astype(np.float32),
    "read-only": _read_only,
    "masked": lambda a: np.ma.masked_array(a),
    "list": lambda a: a.tolist(),
}
ARGUMENTS = ["x", "W_f", "U_o", "b_i", "h", "c", "grad h", "grad final c"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(ARGUMENTS), layout=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2**16))
def test_any_layout_of_any_argument_is_refused_by_name_or_changes_nothing(lstm, which, layout, seed):
    x, params, init, grads = arrays(lstm, seed=seed)
    grads = {**grads, "final": {"c": grads["c"][0].copy()}}
    expected = results(lstm, x, params, init, grads)
    original = {"x": x, **params, **init, "grad h": grads["h"], "grad final c": grads["final"]["c"]}[which]
    changed = LAYOUTS[layout](original)
    label = {"x": "x", "h": "init['h']", "c": "init['c']", "grad h": "grads['h']"}.get(which, f"params['{which}']")
    label = "grads['final']['c']" if which == "grad final c" else label
    if which == "x":
        x = changed
    elif which in params:
        params = {**params, which: changed}
    elif which in init:
        init = {**init, which: changed}
    elif which == "grad h":
        grads = {**grads, "h": changed}
    else:
        grads = {**grads, "final": {"c": changed}}
    acceptable = (
        isinstance(changed, np.ndarray)
        and not isinstance(changed, np.ma.MaskedArray)
        and changed.dtype == np.float64
        and changed.shape == original.shape
        and changed.flags.c_contiguous
        and changed.flags.aligned
    )
    if acceptable:
        assert_same(results(lstm, x, params, init, grads), expected)
    else:
        with pytest.raises(sg.ArrayError) as info:
            results(lstm, x, params, init, grads)
        assert str(info.value).startswith(label) or f"{label} " in str(info.value), (layout, str(info.value))


def test_calls_of_changing_sizes_give_the_results_of_a_fresh_kernel_each(lstm):
    """A kernel remembers the array shapes of the sizes it has seen and reuses its scratch memory:
    neither may leak from one call into the next, whichever sizes come in whichever order."""
    calls = [({"D": 3, "H": 4}, 5, 2), ({"D": 7, "H": 9}, 11, 3), ({"D": 3, "H": 4}, 1, 1), ({"D": 2, "H": 5}, 6, 4)]
    expected = []
    for sizes, steps, batch in calls:
        fresh = sg.build(sg.parse(LSTM))  # a new Kernel: nothing remembered, no scratch memory yet
        expected.append(results(fresh, *arrays(fresh, sizes, steps, batch, seed=steps)))
    for _ in range(2):
        for (sizes, steps, batch), want in zip(calls, expected, strict=True):
            got = results(lstm, *arrays(lstm, sizes, steps, batch, seed=steps))
            assert got.keys() == want.keys()
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_threads_running_one_kernel_at_once_each_get_their_own_results(lstm):
    from concurrent.futures import ThreadPoolExecutor

    cases = [arrays(lstm, {"D": 3 + i, "H": 4 + i}, steps=20, batch=2 + i, seed=i) for i in range(4)]
    alone = [results(lstm, *case) for case in cases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda case: [results(lstm, *case) for _ in range(20)][-1], cases))
    for want, got in zip(alone, together, strict=True):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_ndarray_subclasses_such_as_memmap_are_read_like_plain_arrays(lstm, tmp_path):
    x, params, init, grads = arrays(lstm)
    mapped = np.memmap(tmp_path / "x.bin", dtype=x.dtype, mode="w+", shape=x.shape)
    mapped[...] = x
    want = results(lstm, x, params, init, grads)
    got = results(lstm, mapped, params, init, grads)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
