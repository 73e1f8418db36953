"""Helpers for the ONNX backend's tests: small models, random weights, onnxruntime runs, and the
numpy reference (tests/reference.py) applied to the same layers."""
import numpy as np
import onnx

from nnspec.onnx_file import compile_model
from nnspec.backends.onnx.runtime import Session
from nnspec.ir.model import Model, analyze
from reference import output_mask, run_layer

ATOL = 1e-5


def model_of(layers, *inputs, outputs=None):
    """inputs: shapes, or (shape, dtype) pairs; named x (one) or x0, x1, ... (several)."""
    specs = []
    for i, spec in enumerate(inputs):
        shape, dtype = spec if isinstance(spec[-1], str) else (spec, "float32")
        specs.append({"name": "x" if len(inputs) == 1 else f"x{i}", "shape": list(shape), "dtype": dtype})
    return Model.model_validate({"name": "case", "inputs": specs, "layers": layers, "outputs": outputs})


def analysis_of(model):
    analysis, problems = analyze(model)
    assert not problems, problems
    return analysis


def random_weights(analysis, rng):
    """Every weight random (biases too, so a dropped bias shows); variances positive."""
    out = {}
    for info in analysis.layers:
        arrays = []
        for w in info.layer.weights(info.inputs):
            if "variance" in w.name:
                arrays.append(rng.uniform(0.5, 1.5, w.shape))
            else:
                arrays.append(rng.normal(0.0, 0.4, w.shape))
        if arrays:
            out[info.layer.name] = [a.astype(np.float32) for a in arrays]
    return out


def random_input(shape, dtype, rng, batch=3):
    shape = [5 if d is None else d for d in shape]
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 5, (batch, *shape)).astype(dtype)
    return rng.normal(size=(batch, *shape)).astype(dtype)


def run_onnx(proto, arrays):
    return Session(proto, "cpu", notice=False).run(arrays)


def compiled(model, weights, fused=True, opset=18):
    proto = compile_model(model, weights, opset, fused=fused)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def keras_config(layer):
    """The IR layer as the Keras get_config() dict reference.run_layer reads."""
    config = layer.model_dump()
    for key in ("activation", "recurrent_activation"):
        if key in config:
            config[key] = config[key]["name"]
    for key in ("layer", "backward_layer"):
        sub = getattr(layer, key, None)
        if sub is not None:
            config[key] = {"class_name": sub.type, "config": keras_config(sub)}
    return config


def keras_version(layer):
    """reference.py picks hard_sigmoid's slope by Keras version: 0.2 is Keras 2's."""
    owners = [layer, getattr(layer, "layer", None)]
    fns = [getattr(o, k, None) for o in owners for k in ("activation", "recurrent_activation")]
    return 2 if any(getattr(f, "slope", None) == 0.2 for f in fns) else 3


def reference_outputs(model, weights, arrays):
    """Run the model layer by layer through reference.run_layer, masks included."""
    tensors = {i.name: (np.asarray(a), None) for i, a in zip(model.inputs, arrays)}
    for layer in model.layers:
        xs = [tensors[t][0] for t in layer.inputs]
        masks = [tensors[t][1] for t in layer.inputs]
        merge = len(xs) > 1
        mask = masks if merge else masks[0]
        config = keras_config(layer)
        y = run_layer(layer.type, config, weights.get(layer.name, []), xs, mask, keras_version(layer))
        ys = y if isinstance(y, list) else [y]
        m = output_mask(layer.type, config, xs, mask)
        for k, v in enumerate(ys):
            tensors[layer.name if k == 0 else f"{layer.name}:{k}"] = (v, m if k == 0 else None)
    return [tensors[o][0] for o in model.outputs]


def assert_close(got, want, atol=ATOL):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        err = float(np.max(np.abs(g - w))) if g.size else 0.0
        assert err <= atol, f"max abs error {err:.3g} > {atol}"
