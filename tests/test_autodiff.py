"""Every vector-Jacobian product against central finite differences, run by onnxruntime."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnspec.backends.onnx.autodiff import VJP, gradient_model

OPSET = 18


def build(op, inputs: dict, attrs=None, consts: dict | None = None, lead: dict | None = None, n_out=1):
    """One `op` node on float32 inputs (after constant `lead` ones), loss = sum(output * fixed random weights)."""
    consts = {**(lead or {}), **(consts or {})}
    names = list(lead or {}) + list(inputs) + [k for k in consts if k not in (lead or {})]
    node = helper.make_node(op, names, ["out"] + [f"extra{i}" for i in range(n_out - 1)], **(attrs or {}))
    graph_inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    weights_node = helper.make_node("Mul", ["out", "r"], ["yr"])
    loss_node = helper.make_node("ReduceSum", ["yr"], ["loss"], keepdims=0)
    graph = helper.make_graph([node, weights_node, loss_node], "g", graph_inputs,
                              [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])], inits)
    probe = helper.make_graph([node], "probe", graph_inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              inits)
    probe_model = helper.make_model(probe, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
    y = ort.InferenceSession(probe_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["out"], inputs)[0]
    r = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(r, "r"))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def check(model, inputs: dict, eps=1e-2, rtol=2e-2, atol=2e-3):
    wrt = list(inputs)
    grad_model = gradient_model(model, "loss", wrt)
    onnx.checker.check_model(grad_model, full_check=True)
    sess = ort.InferenceSession(grad_model.SerializeToString(), providers=["CPUExecutionProvider"])
    fwd = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, inputs)
    analytic = dict(zip(wrt, outs[1:]))
    for name, value in inputs.items():
        numeric = np.zeros_like(value, dtype=np.float64)
        flat = value.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            up = fwd.run(None, inputs)[0]
            flat[i] = saved - eps
            down = fwd.run(None, inputs)[0]
            flat[i] = saved
            numeric.reshape(-1)[i] = (float(up) - float(down)) / (2 * eps)
        np.testing.assert_allclose(analytic[name], numeric, rtol=rtol, atol=atol, err_msg=f"d loss / d {name}")


def rand(*shape, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(low, high, size=shape).astype(np.float32)


def away_from_zero(*shape, seed=0):
    x = rand(*shape, seed=seed)
    return np.where(np.abs(x) < 0.1, 0.3, x).astype(np.float32)


UNARY = [
    ("Relu", {}, away_from_zero), ("LeakyRelu", {"alpha": 0.3}, away_from_zero), ("Elu", {"alpha": 0.7}, away_from_zero),
    ("Selu", {}, away_from_zero), ("Sigmoid", {}, rand), ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, away_from_zero),
    ("Tanh", {}, rand), ("Exp", {}, rand), ("Softplus", {}, rand), ("Softsign", {}, away_from_zero),
    ("Erf", {}, rand), ("Sin", {}, rand), ("Cos", {}, rand), ("Neg", {}, rand), ("Abs", {}, away_from_zero),
    ("Identity", {}, rand), ("Softmax", {"axis": -1}, rand), ("LogSoftmax", {"axis": 1}, rand),
    ("Log", {}, lambda *s: rand(*s, low=0.5, high=2.0)), ("Sqrt", {}, lambda *s: rand(*s, low=0.5, high=2.0)),
    ("Reciprocal", {}, lambda *s: rand(*s, low=0.5, high=2.0)),
]


@pytest.mark.parametrize("op, attrs, make", UNARY, ids=[u[0] for u in UNARY])
def test_unary(op, attrs, make):
    x = make(3, 4)
    check(build(op, {"x": x}, attrs), {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4))])
def test_broadcasting_binary(op, shapes):
    # values on two interleaved grids: no two are closer than the finite-difference step
    rng = np.random.default_rng(1)
    a = (rng.integers(0, 10, shapes[0]) * 0.1 + 0.5).astype(np.float32)
    c = (rng.integers(0, 10, shapes[1]) * 0.1 + 0.55).astype(np.float32)
    check(build(op, {"a": a, "b": c}), {"a": a, "b": c})


def test_matmul_batched_and_gemm():
    a, w = rand(2, 3, 4), rand(4, 5, seed=3)
    check(build("MatMul", {"a": a, "w": w}), {"a": a, "w": w})
    x, k, c = rand(3, 4), rand(5, 4, seed=4), rand(5, seed=5)
    check(build("Gemm", {"x": x, "k": k, "c": c}, {"transB": 1, "alpha": 0.5}), {"x": x, "k": k, "c": c})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions(op, keepdims):
    x = rand(2, 3, 4)
    check(build(op, {"x": x}, {"keepdims": keepdims}, {"axes": np.array([1, -1], np.int64)}), {"x": x})


def test_shape_ops():
    x = rand(2, 3, 4)
    check(build("Reshape", {"x": x}, consts={"s": np.array([6, 4], np.int64)}), {"x": x})
    check(build("Transpose", {"x": x}, {"perm": [2, 0, 1]}), {"x": x})
    check(build("Flatten", {"x": x}, {"axis": 1}), {"x": x})
    check(build("Unsqueeze", {"x": x}, consts={"a": np.array([1], np.int64)}), {"x": x})
    check(build("Expand", {"x": rand(3, 1)}, consts={"s": np.array([2, 3, 4], np.int64)}), {"x": rand(3, 1)})
    check(build("Slice", {"x": x}, consts={"s": np.array([1, 0], np.int64), "e": np.array([3, -1], np.int64),
                                          "a": np.array([1, 2], np.int64)}), {"x": x})
    y = rand(2, 5, 4, seed=9)
    check(build("Concat", {"x": x, "y": y}, {"axis": 1}), {"x": x, "y": y})
    check(build("Clip", {"x": away_from_zero(3, 4)}, consts={"lo": np.array(-0.5, np.float32),
                                                           "hi": np.array(0.5, np.float32)}),
          {"x": away_from_zero(3, 4)})


def test_where_and_gather():
    x, y = rand(3, 4), rand(3, 4, seed=7)
    check(build("Where", {"x": x, "y": y}, lead={"cond": rand(3, 4, seed=8) > 0}), {"x": x, "y": y})
    table = rand(6, 3)
    check(build("Gather", {"t": table}, consts={"i": np.array([[0, 2], [2, 5]], np.int64)}), {"t": table})


@pytest.mark.parametrize("attrs, shape", [
    ({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (2, 3, 6, 6)),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]}, (1, 2, 7, 7)),
    ({"kernel_shape": [2, 2], "dilations": [2, 2]}, (1, 2, 6, 5)),
    ({"kernel_shape": [3], "strides": [2]}, (2, 2, 9)),
])
def test_conv(attrs, shape):
    x = rand(*shape)
    w = rand(4, shape[1], *attrs["kernel_shape"], seed=3)
    c = rand(4, seed=4)
    check(build("Conv", {"x": x, "w": w, "c": c}, attrs), {"x": x, "w": w, "c": c})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
])
def test_pooling(op, attrs):
    x = (np.random.default_rng(0).permutation(150).reshape(2, 3, 5, 5) * 0.05).astype(np.float32)  # no near-ties
    if op == "AveragePool":
        attrs = {**attrs, "count_include_pad": 0}
    check(build(op, {"x": x}, attrs), {"x": x})


def test_every_registered_rule_is_tested():
    tested = {u[0] for u in UNARY} | {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "MatMul", "Gemm", "ReduceSum",
              "ReduceMean", "ReduceMax", "Reshape", "Transpose", "Flatten", "Unsqueeze", "Expand", "Slice", "Concat",
              "Clip", "Where", "Gather", "Conv", "MaxPool", "AveragePool"}
    untested = set(VJP) - tested
    # these are algebraically identical to tested rules (aliases registered on the same function)
    assert untested <= {"Dropout", "Sum", "ReduceMin", "Squeeze", "Cast", "Split"}, untested
