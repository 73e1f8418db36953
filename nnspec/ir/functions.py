"""Activations, initializers, regularizers and constraints, with Keras's names and defaults."""

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat

from .base import Family, Fn

Seed = int | None

# ---- activations ---------------------------------------------------------------


class Linear(Fn):
    name: Literal["linear"] = "linear"
    aliases = ("identity", "none")


class Relu(Fn):
    """Keras's relu: x above `threshold` (capped at `max_value`), `negative_slope` * (x - threshold) below."""

    name: Literal["relu"] = "relu"
    aliases = ("ReLU",)
    negative_slope: NonNegativeFloat = 0.0
    max_value: NonNegativeFloat | None = None
    threshold: float = 0.0


class Relu6(Fn):
    name: Literal["relu6"] = "relu6"


class LeakyRelu(Fn):
    name: Literal["leaky_relu"] = "leaky_relu"
    aliases = ("LeakyReLU",)
    positional = ("alpha",)
    alpha: NonNegativeFloat = 0.2  # Keras 3's default; Keras 2's LeakyReLU layer used 0.3


class Elu(Fn):
    name: Literal["elu"] = "elu"
    aliases = ("ELU",)
    positional = ("alpha",)
    alpha: float = 1.0


class Selu(Fn):
    name: Literal["selu"] = "selu"


class Softplus(Fn):
    name: Literal["softplus"] = "softplus"


class Softsign(Fn):
    name: Literal["softsign"] = "softsign"


class Tanh(Fn):
    name: Literal["tanh"] = "tanh"


class Sigmoid(Fn):
    name: Literal["sigmoid"] = "sigmoid"


class HardSigmoid(Fn):
    """clip(slope * x + 0.5, 0, 1). Keras 3 uses slope 1/6 (relu6(x + 3) / 6); Keras 2 used 0.2."""

    name: Literal["hard_sigmoid"] = "hard_sigmoid"
    positional = ("slope",)
    slope: PositiveFloat = 1.0 / 6.0


class Exponential(Fn):
    name: Literal["exponential"] = "exponential"
    aliases = ("exp",)


class Swish(Fn):
    name: Literal["swish"] = "swish"
    aliases = ("silu",)


class HardSilu(Fn):
    """x * hard_sigmoid(x) with Keras 3's slope of 1/6: MobileNetV3's hard swish."""

    name: Literal["hard_silu"] = "hard_silu"
    aliases = ("hard_swish",)


class Mish(Fn):
    name: Literal["mish"] = "mish"


class Gelu(Fn):
    name: Literal["gelu"] = "gelu"
    positional = ("approximate",)
    approximate: bool = False


class Softmax(Fn):
    name: Literal["softmax"] = "softmax"
    aliases = ("Softmax",)
    positional = ("axis",)
    axis: int = -1


class Celu(Fn):
    name: Literal["celu"] = "celu"
    positional = ("alpha",)
    alpha: PositiveFloat = 1.0


class HardTanh(Fn):
    name: Literal["hard_tanh"] = "hard_tanh"


class LogSigmoid(Fn):
    name: Literal["log_sigmoid"] = "log_sigmoid"


class TanhShrink(Fn):
    name: Literal["tanh_shrink"] = "tanh_shrink"


class HardShrink(Fn):
    name: Literal["hard_shrink"] = "hard_shrink"
    positional = ("threshold",)
    threshold: NonNegativeFloat = 0.5


class SoftShrink(Fn):
    name: Literal["soft_shrink"] = "soft_shrink"
    positional = ("threshold",)
    threshold: NonNegativeFloat = 0.5


class Squareplus(Fn):
    name: Literal["squareplus"] = "squareplus"
    positional = ("b",)
    b: NonNegativeFloat = 4.0


class SparsePlus(Fn):
    name: Literal["sparse_plus"] = "sparse_plus"


class LogSoftmax(Fn):
    name: Literal["log_softmax"] = "log_softmax"
    positional = ("axis",)
    axis: int = -1


ACTIVATIONS = Family(
    "activation",
    [Linear, Relu, Relu6, LeakyRelu, Elu, Selu, Softplus, Softsign, Tanh, Sigmoid, HardSigmoid, Exponential,
     Swish, HardSilu, Mish, Gelu, Softmax, LogSoftmax, Celu, HardTanh, LogSigmoid, TanhShrink, HardShrink,
     SoftShrink, Squareplus, SparsePlus],
)
Activation = ACTIVATIONS.type

# ---- initializers --------------------------------------------------------------


class Zeros(Fn):
    name: Literal["zeros"] = "zeros"
    aliases = ("zero",)


class Ones(Fn):
    name: Literal["ones"] = "ones"
    aliases = ("one",)


class Constant(Fn):
    name: Literal["constant"] = "constant"
    positional = ("value",)
    value: float = 0.0


class RandomNormal(Fn):
    name: Literal["random_normal"] = "random_normal"
    aliases = ("normal",)
    positional = ("mean", "stddev", "seed")
    mean: float = 0.0
    stddev: PositiveFloat = 0.05
    seed: Seed = None


class RandomUniform(Fn):
    name: Literal["random_uniform"] = "random_uniform"
    aliases = ("uniform",)
    positional = ("minval", "maxval", "seed")
    minval: float = -0.05
    maxval: float = 0.05
    seed: Seed = None


class TruncatedNormal(Fn):
    name: Literal["truncated_normal"] = "truncated_normal"
    positional = ("mean", "stddev", "seed")
    mean: float = 0.0
    stddev: PositiveFloat = 0.05
    seed: Seed = None


class _Scaled(Fn):
    positional = ("seed",)
    seed: Seed = None


class GlorotUniform(_Scaled):
    name: Literal["glorot_uniform"] = "glorot_uniform"
    aliases = ("xavier_uniform", "xavier")


class GlorotNormal(_Scaled):
    name: Literal["glorot_normal"] = "glorot_normal"
    aliases = ("xavier_normal",)


class HeUniform(_Scaled):
    name: Literal["he_uniform"] = "he_uniform"
    aliases = ("kaiming_uniform",)


class HeNormal(_Scaled):
    name: Literal["he_normal"] = "he_normal"
    aliases = ("kaiming_normal",)


class LecunUniform(_Scaled):
    name: Literal["lecun_uniform"] = "lecun_uniform"


class LecunNormal(_Scaled):
    name: Literal["lecun_normal"] = "lecun_normal"


class VarianceScaling(Fn):
    name: Literal["variance_scaling"] = "variance_scaling"
    scale: PositiveFloat = 1.0
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform", "normal"] = "truncated_normal"
    seed: Seed = None


class Orthogonal(Fn):
    name: Literal["orthogonal"] = "orthogonal"
    positional = ("gain", "seed")
    gain: float = 1.0
    seed: Seed = None


class Identity(Fn):
    name: Literal["identity"] = "identity"
    aliases = ("eye",)
    positional = ("gain",)
    gain: float = 1.0


INITIALIZERS = Family(
    "initializer",
    [Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, GlorotUniform, GlorotNormal, HeUniform,
     HeNormal, LecunUniform, LecunNormal, VarianceScaling, Orthogonal, Identity],
)
Initializer = INITIALIZERS.type

# ---- regularizers --------------------------------------------------------------


class L1(Fn):
    name: Literal["l1"] = "l1"
    positional = ("l1",)
    l1: NonNegativeFloat = 0.01


class L2(Fn):
    name: Literal["l2"] = "l2"
    positional = ("l2",)
    l2: NonNegativeFloat = 0.01


class L1L2(Fn):
    name: Literal["l1_l2"] = "l1_l2"
    aliases = ("L1L2",)
    positional = ("l1", "l2")
    l1: NonNegativeFloat = 0.0
    l2: NonNegativeFloat = 0.0


REGULARIZERS = Family("regularizer", [L1, L2, L1L2])
Regularizer = REGULARIZERS.type

# ---- constraints ---------------------------------------------------------------

Axis = int | list[int]


class MaxNorm(Fn):
    name: Literal["max_norm"] = "max_norm"
    aliases = ("maxnorm",)
    positional = ("max_value", "axis")
    max_value: PositiveFloat = 2.0
    axis: Axis = 0


class NonNeg(Fn):
    name: Literal["non_neg"] = "non_neg"
    aliases = ("nonneg",)


class UnitNorm(Fn):
    name: Literal["unit_norm"] = "unit_norm"
    aliases = ("unitnorm",)
    positional = ("axis",)
    axis: Axis = 0


class MinMaxNorm(Fn):
    name: Literal["min_max_norm"] = "min_max_norm"
    positional = ("min_value", "max_value")
    min_value: NonNegativeFloat = 0.0
    max_value: NonNegativeFloat = 1.0
    rate: float = Field(1.0, ge=0.0, le=1.0)
    axis: Axis = 0


CONSTRAINTS = Family("constraint", [MaxNorm, NonNeg, UnitNorm, MinMaxNorm])
Constraint = CONSTRAINTS.type
