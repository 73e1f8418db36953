"""Every primitive's vector-Jacobian product against central finite differences, through the
same lowering and onnxruntime that training uses."""
import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx import primitives as P
from nnspec.backends.onnx.autograd import grad
from nnspec.backends.onnx.emit import to_onnx
from nnspec.backends.onnx.graph import Aval, Graph
from gradcheck import central_difference

def check(fn, *arrays, eps=1e-2, rtol=2e-2, atol=2e-3, **params):
    """fn(*vars) -> Var; compare d sum(fn * r) / d inputs with central differences."""
    graph = Graph()
    xs = [graph.input(f"x{i}", a.shape, "float32") for i, a in enumerate(arrays)]
    out = fn(*xs)
    r = graph.const(np.random.default_rng(1).normal(size=[d for d in out.shape]).astype(np.float32))
    loss = P.reduce_sum(out * r, axes=tuple(range(out.rank)), keepdims=False)
    grads = grad(graph, loss, xs)
    outputs = {"loss": loss, **{f"g{i}": g for i, g in enumerate(grads)}}
    model = to_onnx(graph, outputs)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {f"x{i}": a for i, a in enumerate(arrays)}
    analytic = sess.run([f"g{i}" for i in range(len(arrays))], feeds)
    for i, a in enumerate(arrays):
        numeric = np.array([central_difference(sess, feeds, f"x{i}", j, eps) for j in range(a.size)]).reshape(a.shape)
        np.testing.assert_allclose(analytic[i], numeric, rtol=rtol, atol=atol, err_msg=f"d loss / d x{i}")


def rand(*shape, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(low, high, size=shape).astype(np.float32)


def away_from_zero(*shape, seed=0):
    x = rand(*shape, seed=seed)
    return np.where(np.abs(x) < 0.1, 0.3, x).astype(np.float32)


def positive(*shape):
    return rand(*shape, low=0.5, high=2.0)


UNARY = [
    (P.relu, {}, away_from_zero), (P.leaky_relu, {"alpha": 0.3}, away_from_zero), (P.elu, {"alpha": 0.7}, away_from_zero),
    (P.selu, {}, away_from_zero), (P.sigmoid, {}, rand), (P.hard_sigmoid, {"alpha": 0.2, "beta": 0.5}, away_from_zero),
    (P.tanh, {}, rand), (P.exp, {}, rand), (P.softplus, {}, rand), (P.softsign, {}, away_from_zero), (P.erf, {}, rand),
    (P.sin, {}, rand), (P.cos, {}, rand), (P.neg, {}, rand), (P.abs, {}, away_from_zero), (P.log, {}, positive),
    (P.sqrt, {}, positive), (P.reciprocal, {}, positive), (P.softmax, {"axis": -1}, rand),
    (P.log_softmax, {"axis": 1}, rand), (P.clip, {"min": -0.5, "max": 0.5}, away_from_zero),
]


@pytest.mark.parametrize("prim, params, make", UNARY, ids=[u[0].name for u in UNARY])
def test_unary(prim, params, make):
    check(lambda x: prim(x, **params), make(3, 4))


@pytest.mark.parametrize("prim", [P.add, P.sub, P.mul, P.div, P.maximum, P.minimum, P.pow], ids=lambda p: p.name)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4))])
def test_broadcasting_binary(prim, shapes):
    # two interleaved grids: no pair closer than the finite-difference step (max/min kinks)
    rng = np.random.default_rng(1)
    a = (rng.integers(0, 10, shapes[0]) * 0.1 + 0.5).astype(np.float32)
    b = (rng.integers(0, 10, shapes[1]) * 0.1 + 0.55).astype(np.float32)
    check(prim, a, b)


def test_where_cast_and_tile():
    cond = rand(3, 4, seed=8) > 0
    check(lambda x, y: P.where(x.graph.const(cond), x, y), rand(3, 4), rand(3, 4, seed=7))
    check(lambda x: P.cast(x, dtype="float32") * 2.0, rand(3, 4))
    check(lambda x: P.tile(x, reps=(2, 3)), rand(2, 3))


def test_linear_algebra():
    check(P.matmul, rand(2, 3, 4), rand(4, 5, seed=3))
    check(P.matmul, rand(3, 4), rand(4, 5, seed=3))
    check(lambda a, b, c: P.gemm(a, b, c), rand(3, 4), rand(4, 5, seed=4), rand(5, seed=5))


@pytest.mark.parametrize("prim", [P.reduce_sum, P.reduce_mean, P.reduce_max], ids=lambda p: p.name)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(prim, keepdims):
    x = (np.random.default_rng(0).permutation(24).reshape(2, 3, 4) * 0.05).astype(np.float32)
    check(lambda v: prim(v, axes=(1, -1), keepdims=keepdims), x)


def test_structure():
    x = rand(2, 3, 4)
    check(lambda v: P.reshape(v, shape=(0, 12)), x)
    check(lambda v: P.reshape_like(v, v.graph.const(np.zeros((4, 6), np.float32))), x)
    check(lambda v: P.transpose(v, perm=(2, 0, 1)), x)
    check(lambda v: P.slice_(v, axis=1, start=1, stop=3), x)
    check(lambda v: P.slice_(v, axis=(1, 2), start=(1, 0), stop=(3, 3), step=(1, 1)), x)
    check(lambda v: P.rev(v, axis=1), x)
    check(lambda v: P.pad(v, pads=(0, 1, 0, 0, 2, 1)), x)
    check(lambda v: P.crop(v, pads=(0, 1, 2, 1, 0, 1)), x)
    check(lambda v: P.resize(v, sizes=(5, 3), axes=(1, 2), mode="linear"), x)
    check(lambda v: P.resize(v, sizes=(2, 9), axes=(1, 2), mode="nearest"), x)
    check(lambda a, b: P.concat(a, b, axis=1), x, rand(2, 5, 4, seed=9))
    check(lambda v: P.expand_like(v, v.graph.const(np.zeros((2, 3, 4), np.float32))), rand(3, 1))
    check(lambda v: P.unsqueeze(v, axis=2), x)


def test_gather_rows():
    check(lambda t: P.gather(t, t.graph.const(np.array([[0, 2], [2, 5]], np.int64))), rand(6, 3))


def test_gather_steps_and_cumsum():
    """Steps picked per sequence, some twice and some never (as masks gather them), and running sums."""
    steps = np.array([[2, 0, 0, 3], [1, 1, 1, 1]], np.int64)
    check(lambda x: P.gather_steps(x, x.graph.const(steps)), rand(2, 4, 3))
    check(lambda x: P.gather_steps(x, x.graph.const(steps[:, :2])), rand(2, 4))
    check(lambda x: P.cumsum(x, axis=1), rand(2, 4, 3))
    check(lambda x: P.cumsum(x, axis=0, reverse=True), rand(3, 2))


@pytest.mark.parametrize("params, shape", [
    ({"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}, (2, 3, 6, 6)),
    ({"strides": (2, 2), "pads": None, "dilations": (1, 1)}, (1, 2, 7, 7)),
    ({"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (2, 2)}, (1, 2, 6, 5)),
    ({"strides": (2,), "pads": (0, 0), "dilations": (1,)}, (2, 2, 9)),
])
def test_conv(params, shape):
    kernel = (3,) * (len(shape) - 2) if params["dilations"][0] == 1 else (2, 2)
    check(lambda x, w, b: P.conv(x, w, b, group=1, **params), rand(*shape), rand(4, shape[1], *kernel, seed=3),
          rand(4, seed=4))


@pytest.mark.parametrize("group, filters, params, shape", [
    (2, 4, {"strides": (1, 1), "pads": (1, 0, 1, 2), "dilations": (1, 1)}, (2, 4, 5, 5)),
    (3, 6, {"strides": (2, 2), "pads": None, "dilations": (1, 1)}, (2, 3, 6, 7)),  # depthwise, multiplier 2
    (2, 2, {"strides": (1,), "pads": (0, 0), "dilations": (2,)}, (3, 2, 8)),  # depthwise 1-D, dilated
])
def test_grouped_conv(group, filters, params, shape):
    """Data and kernel cotangents of grouped and depthwise convolutions."""
    kernel = (3,) * (len(shape) - 2)
    check(lambda x, w, b: P.conv(x, w, b, group=group, **params), rand(*shape),
          rand(filters, shape[1] // group, *kernel, seed=3), rand(filters, seed=4))


@pytest.mark.parametrize("group, params, shape", [
    (1, {"strides": (2, 2), "pads": (1, 0, 0, 1), "dilations": (1, 1), "output_padding": (1, 0)}, (2, 3, 3, 4)),
    (1, {"strides": (1,), "pads": (0, 0), "dilations": (2,), "output_padding": (0,)}, (2, 2, 5)),
    (2, {"strides": (3,), "pads": (1, 1), "dilations": (1,), "output_padding": (2,)}, (2, 4, 4)),
])
def test_conv_transpose(group, params, shape):
    kernel = (3,) * (len(shape) - 2)
    check(lambda g, w, b: P.conv_transpose(g, w, b, group=group, **params), rand(*shape),
          rand(shape[1], 3, *kernel, seed=3), rand(3 * group, seed=4))


@pytest.mark.parametrize("prim", [P.max_pool, P.avg_pool], ids=lambda p: p.name)
@pytest.mark.parametrize("params", [
    {"kernel_shape": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)},
    {"kernel_shape": (3, 3), "strides": (2, 2), "pads": None},
])
def test_pooling(prim, params):
    x = (np.random.default_rng(0).permutation(150).reshape(2, 3, 5, 5) * 0.05).astype(np.float32)  # no near-ties
    check(lambda v: prim(v, **params), x)


def _first_max_routing(x, g, k):
    """numpy: each window's cotangent to its first maximum in row-major order (TensorFlow's choice)."""
    out = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*g.shape):
        window = x[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k]
        a, b = np.unravel_index(np.argmax(window), window.shape)
        out[n, c, i * k + a, j * k + b] += g[n, c, i, j]
    return out


@pytest.mark.parametrize("size", [6, 7])  # 7: the last row and column belong to no window
def test_max_pool_ties_go_to_the_first_maximum(size):
    """Windows of equal values (ReLU's zeros, repeated pixels): only the first cell gets the cotangent."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, 3, size, size)).astype(np.float32)  # many ties
    graph = Graph()
    v = graph.input("x", x.shape, "float32")
    y = P.max_pool(v, kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    g = rng.normal(size=[d for d in y.shape]).astype(np.float32)
    loss = P.reduce_sum(y * graph.const(g), axes=(0, 1, 2, 3), keepdims=False)
    model = to_onnx(graph, {"loss": loss, "g": grad(graph, loss, [v])[0]})
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["g"], {"x": x})[0]
    np.testing.assert_array_equal(got, _first_max_routing(x, g, 2))


@pytest.mark.parametrize("shape", [(3, 2, 4, 5), (6, 3)])
def test_batch_norm_train(shape):
    """The closed-form VJP against finite differences, with and without the statistics' own
    cotangents; the outputs against numpy."""
    channels = shape[1]
    along = lambda v: P.reshape(v, shape=(-1, *[1] * (len(shape) - 2)))  # noqa: E731
    args = rand(*shape) * 3.0 + 1.0, rand(channels, seed=3) + 1.5, rand(channels, seed=4)
    check(lambda x, g, b: P.batch_norm_train(x, g, b, epsilon=1e-3)[0], *args)
    check(lambda x, g, b: (lambda y, m, v, _: y + along(m) * 0.7 + along(v) * 1.3)(
        *P.batch_norm_train(x, g, b, epsilon=1e-3)), *args)
    graph = Graph()
    xs = [graph.input(f"x{i}", a.shape, "float32") for i, a in enumerate(args)]
    outs = dict(zip("ymvc", P.batch_norm_train(*xs, epsilon=1e-3)))
    sess = ort.InferenceSession(to_onnx(graph, outs).SerializeToString(), providers=["CPUExecutionProvider"])
    y, mean, var, centered = sess.run(list(outs), {f"x{i}": a for i, a in enumerate(args)})
    x = args[0].astype(np.float64)
    axes = (0, *range(2, x.ndim))
    shaped = lambda v: v.reshape(-1, *[1] * (x.ndim - 2))  # noqa: E731
    np.testing.assert_allclose(mean, x.mean(axes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x.var(axes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(centered, x - shaped(x.mean(axes)), rtol=1e-5, atol=1e-5)
    expected = (x - shaped(x.mean(axes))) / np.sqrt(shaped(x.var(axes)) + 1e-3) * shaped(args[1]) + shaped(args[2])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_split():
    """The middle piece unused: its cotangent is zeros in the Concat."""
    check(lambda x: P.concat(*P.split(x, axis=1, sizes=(1, 3, 2))[::2], axis=1), rand(3, 6))


@pytest.mark.parametrize("reverse", [False, True])
def test_scan(reverse):
    """A tanh recurrence h' = tanh(x + h w + b), output h' * x per step: the initial carry, the sequence,
    a weight read only by a product (its cotangent one product over the stacked steps) and one added
    (summed in the backward Scan's carry)."""
    def fn(x, h0, w, b):
        def step(carry, xs, ks):
            h = P.tanh(xs[0] + carry[0] @ ks[0] + ks[1])
            return [h], [h * xs[0]]
        body = P.trace_body(step, [Aval((None, 3), "float32")], [Aval((None, 3), "float32")], [w.aval, b.aval])
        final, ys, _ = P.scan(h0, x, w, b, body=body, axis=1, in_reverse=(reverse,), out_reverse=(False,),
                              residuals=True)
        return ys + P.reshape(final, shape=(2, 1, 3))
    check(fn, rand(2, 4, 3), rand(2, 3, seed=1), rand(3, 3, seed=2), rand(3, seed=3))


CHECKED_ABOVE = {u[0].name for u in UNARY} | {
    "add", "sub", "mul", "div", "maximum", "minimum", "pow", "where", "cast", "tile", "matmul", "gemm", "reduce_sum",
    "reduce_mean", "reduce_max", "reshape", "reshape_like", "transpose", "slice", "rev", "pad", "crop", "resize", "concat", "expand_like", "gather",
    "gather_steps", "cumsum", "unsqueeze", "batch_norm_train", "conv", "conv_transpose", "max_pool", "avg_pool", "split", "scan"}


def test_every_differentiable_primitive_is_checked_here():
    with_vjp = {p.name for p in vars(P).values() if isinstance(p, P.Primitive) and p.vjp is not None}
    assert with_vjp == CHECKED_ABOVE
