"""A Keras file's optimizer state (slots and step count) as nnspec's optimizer slots, so training
resumes where Keras stopped. Keras 2 names each slot `Opt/slot/layer/weight:0`, grouped by slot;
Keras 3 lists `iteration`, `learning_rate`, then each trainable variable's slots in turn. Both
follow the model's trainable variables in order, which is nnspec's parameter order."""
from __future__ import annotations

import numpy as np

# nnspec slot -> the name Keras 2 gives it
KERAS2_SLOT = {"momentum": "m", "v_hat": "vhat"}


def optimizer_state(stored: dict[str, np.ndarray], keras_version: str, slot_names: list[str],
                    params: list[tuple[str, tuple[int, ...]]]) -> tuple[dict[str, np.ndarray], int] | str:
    """({"param#slot": array}, iterations) for `params` (state key, shape) in trainable order, or a
    sentence saying why the stored state does not fit."""
    if keras_version.startswith("2"):
        iterations = next((v for k, v in stored.items() if k.split("/")[-1].startswith("iteration")), None)
        columns = {s: [v for k, v in stored.items() if k.split("/")[1:2] == [KERAS2_SLOT.get(s, s)]]
                   for s in slot_names}
    else:
        values = list(stored.values())
        iterations = values[0] if values else None
        per_variable = values[2:]  # after iteration and learning_rate
        n = len(slot_names)
        columns = {s: per_variable[i::n] for i, s in enumerate(slot_names)} if n else {}
    if iterations is None:
        return "it has no step count"
    out = {}
    for slot, arrays in columns.items():
        if len(arrays) != len(params):
            return f"it holds {len(arrays)} '{slot}' slot(s) for {len(params)} trainable weight(s)"
        for (key, shape), array in zip(params, arrays):
            if tuple(array.shape) != tuple(shape):
                return f"its '{slot}' slot for {key} has shape {tuple(array.shape)}, not {tuple(shape)}"
            out[f"{key}#{slot}"] = np.asarray(array, np.float32)
    return out, int(np.asarray(iterations))
