"""What lifting tracks while it walks an ONNX graph (lift.py, lift_ops.py).

ONNX values are of three kinds:
- constants (numpy arrays): initializers and whatever folds from them;
- Probes: values computed from a tensor's run-time shape (tf2onnx builds zero states from
  `Shape`), known by evaluating them for two batch sizes;
- Views of a Keras tensor. A Keras tensor is batch first, channels last; the ONNX value may hold
  it transposed (conv stacks run channels-first) and with size-1 dimensions added or dropped.
  `axes` gives, for each ONNX dimension, the Keras axis it is (0: batch) or None for an added
  size-1 dimension. Transposes, unsqueezes and unit reshapes only change the view; a layer is
  made where the data changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import SpecError

PROBE_BATCHES = (131, 137)  # batch sizes shape computations are evaluated for


class LiftError(SpecError):
    """An ONNX graph nnspec cannot express as layers; names the node and its op."""


@dataclass
class Probe:
    """A value that depends on the batch size: one array per entry of PROBE_BATCHES."""

    values: tuple[np.ndarray, ...]


@dataclass(eq=False)
class Tensor:
    """A Keras-level tensor: a model input or a layer output (shape after the batch dimension)."""

    shape: tuple[int | None, ...]
    dtype: str
    layer: "Record | None" = None
    name: str | None = None  # inputs: the graph input's name; layer outputs: set at the end

    @property
    def rank(self) -> int:
        return len(self.shape) + 1

    def size(self, axis: int) -> int | None:
        return None if axis == 0 else self.shape[axis - 1]


@dataclass(eq=False)
class Record:
    """A lifted layer before it becomes an IR layer: fields, weights by IR weight name, wiring."""

    type: str
    fields: dict
    weights: dict[str, np.ndarray]
    inputs: list[Tensor]
    outputs: list[Tensor] = field(default_factory=list)
    scope: str | None = None  # a name hint from the ONNX node names
    states: list[Tensor] = field(default_factory=list)  # recurrent layers: last output (h), then c

    def output(self, shape: tuple, dtype: str = "float32") -> Tensor:
        t = Tensor(tuple(shape), dtype, self)
        self.outputs.append(t)
        return t


@dataclass(frozen=True, eq=False)
class View:
    tensor: Tensor
    axes: tuple[int | None, ...]

    @staticmethod
    def of(t: Tensor) -> "View":
        return View(t, tuple(range(t.rank)))

    @property
    def rank(self) -> int:
        return len(self.axes)

    def dims(self) -> list[int | None]:
        """The ONNX shape; None for the batch and unknown sizes."""
        return [1 if a is None else self.tensor.size(a) for a in self.axes]

    def free(self, position: int) -> bool:
        """Whether the ONNX dimension is a size-1 one that may stand for any size-1 axis."""
        a = self.axes[position]
        return a is None or self.tensor.size(a) == 1

    def fits(self, wanted: list[int | None]) -> bool:
        """Whether this view holds the data as `wanted` (Keras axes per ONNX dimension) does;
        size-1 dimensions may be any size-1 axis, or none."""
        if len(wanted) != self.rank:
            return False
        for p, w in enumerate(wanted):
            w_free = w is None or self.tensor.size(w) == 1
            if (self.free(p) != w_free) or (not w_free and self.axes[p] != w):
                return False
        return True

    def identity(self) -> bool:
        return self.fits(list(range(self.tensor.rank)))

    def permuted(self, perm) -> "View":
        return View(self.tensor, tuple(self.axes[p] for p in perm))

    def inserted(self, positions) -> "View":
        axes = list(self.axes)
        for p in sorted(positions):
            axes.insert(p, None)
        return View(self.tensor, tuple(axes))

    def removed(self, positions) -> "View":
        if any(not self.free(p) for p in positions):
            raise ValueError(f"dimension(s) {sorted(positions)} of size other than 1")
        return View(self.tensor, tuple(a for p, a in enumerate(self.axes) if p not in positions))

    def keras_axis(self, position: int) -> int:
        """The Keras axis an ONNX dimension is, counted from the end (as Keras axis arguments)."""
        a = self.axes[position % self.rank]
        if a is None or a == 0:
            raise ValueError(f"dimension {position} is {'the batch' if a == 0 else 'an added size-1 one'}")
        return a - self.tensor.rank
