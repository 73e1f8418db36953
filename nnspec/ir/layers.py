"""Every layer kind: its fields (Keras's config names and defaults), shape rule and weights.

A layer is one pydantic model. Its `infer` is the shape rule, its `weights` lists the parameter
arrays in Keras `get_weights()` order (and so gives parameter counts equal to Keras's).
"""

import math
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt, field_validator, model_validator

from . import windows
from .base import Family, ShapeError, TensorType, Weight
from .functions import (
    Activation, Constraint, Initializer, Regularizer, Constant, GlorotUniform, Linear, Ones, Orthogonal, RandomUniform,
    Sigmoid, Tanh, Zeros,
)

FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "bool")


class Layer(BaseModel):
    """Fields every layer has. `inputs` names the tensors a layer reads (None: the previous layer's)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)
    type: str
    name: str | None = None
    inputs: list[str] | None = None
    trainable: bool = True

    aliases: ClassVar[tuple[str, ...]] = ()  # how a spec may spell it, besides the Keras class name
    positional: ClassVar[tuple[str, ...]] = ()
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 1)  # least and most tensors it takes
    # The Keras call keyword that takes the tensors after the first (None: every tensor is the
    # call's first argument, a list when there are several)
    extra_inputs_keyword: ClassVar[str | None] = None
    keeps_rank: ClassVar[bool] = False  # output rank = input rank, whatever the config
    # Why Keras has no class for this kind (None: the Keras class of the same name, whose config
    # keys are the fields); such a kind is never read from nor written to Keras files.
    no_keras: ClassVar[str | None] = None
    # Where Keras finds the class, by major version, for the few that keras.applications defines
    keras_module: ClassVar[dict[int, str]] = {2: "keras.layers", 3: "keras.layers"}

    @classmethod
    def keras_rank(cls, config: dict, rank: int | None) -> int | None:
        """Output rank (batch included) from a Keras config and the input's rank, before any layer is
        built (the Keras reader puts normalization axes in one form with it); None: not told."""
        return rank if cls.keeps_rank else None

    def infer(self, ins: list[TensorType]) -> list[TensorType]:
        return [ins[0]]

    def weights(self, ins: list[TensorType]) -> list[Weight]:
        return []

    def parameter_counts(self, ins: list[TensorType]) -> tuple[int, int]:
        """(trainable, non-trainable) parameter counts."""
        trainable = non_trainable = 0
        for w in self.weights(ins):
            if w.trainable and self.trainable:
                trainable += w.size
            else:
                non_trainable += w.size
        return trainable, non_trainable


def _floating(t: TensorType, layer: str) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{layer} needs a floating-point input, got {t.dtype}")


def _known(dim: int | None, what: str) -> int:
    if dim is None:
        raise ShapeError(f"{what} must be known, got None")
    return dim


def _axis(axis: int, rank: int, layer: str) -> int:
    """Keras axes count the batch dimension as 0; return the index into our batch-less shape."""
    full = axis if axis >= 0 else axis + rank + 1
    if not 1 <= full <= rank:
        raise ShapeError(f"{layer} axis {axis} is out of range for an input of rank {rank + 1}")
    return full - 1


class _Kernel(Layer):
    """Fields shared by layers with a kernel and a bias."""

    keeps_rank = True

    activation: Activation = Linear()
    use_bias: bool = True
    kernel_initializer: Initializer = GlorotUniform()
    bias_initializer: Initializer = Zeros()
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    def _kernel_and_bias(self, kernel_shape: tuple[int, ...], units: int) -> list[Weight]:
        out = [Weight("kernel", kernel_shape, self.kernel_initializer, True, self.kernel_regularizer,
                      self.kernel_constraint)]
        if self.use_bias:
            out.append(Weight("bias", (units,), self.bias_initializer, True, self.bias_regularizer,
                              self.bias_constraint))
        return out


# ---- core ----------------------------------------------------------------------


class Dense(_Kernel):
    type: Literal["Dense"] = "Dense"
    aliases = ("dense", "linear_layer", "fc")
    positional = ("units", "activation")
    units: PositiveInt

    def infer(self, ins):
        t = ins[0]
        _floating(t, "Dense")
        if not t.shape:
            raise ShapeError("Dense needs an input of rank 2 or more; add an input shape")
        _known(t.shape[-1], "Dense's input's last dimension")
        return [TensorType(t.dtype, (*t.shape[:-1], self.units), t.masked)]

    def weights(self, ins):
        return self._kernel_and_bias((ins[0].shape[-1], self.units), self.units)


class ActivationLayer(Layer):
    type: Literal["Activation"] = "Activation"
    keeps_rank = True
    aliases = ("activation",)
    positional = ("activation",)
    activation: Activation


class Dropout(Layer):
    type: Literal["Dropout"] = "Dropout"
    keeps_rank = True
    aliases = ("dropout",)
    positional = ("rate",)
    rate: float = Field(ge=0.0, lt=1.0)
    noise_shape: list[int | None] | None = None
    seed: int | None = None


class NotEqual(Layer):
    """x != value, elementwise: the mask computation Keras 3 records as an op layer
    (`keras.ops.not_equal(tokens, 0)`); its output is bool."""

    type: Literal["NotEqual"] = "NotEqual"
    keeps_rank = True
    aliases = ("not_equal",)
    positional = ("value",)
    value: float = 0.0
    no_keras = "Keras has it only as an op layer (keras.ops.not_equal), which nnspec reads but does not write"

    def infer(self, ins):
        return [TensorType("bool", ins[0].shape, ins[0].masked)]


class Cast(Layer):
    """The input converted to `dtype` (Keras's `keras.ops.cast` / `tf.cast` op layers)."""

    type: Literal["Cast"] = "Cast"
    keeps_rank = True
    aliases = ("cast",)
    positional = ("dtype",)
    dtype: Literal[FLOAT_DTYPES + INT_DTYPES]
    no_keras = "Keras has it only as an op layer (keras.ops.cast), which nnspec reads but does not write"

    def infer(self, ins):
        return [TensorType(self.dtype, ins[0].shape, ins[0].masked)]


class Flatten(Layer):
    type: Literal["Flatten"] = "Flatten"
    aliases = ("flatten",)

    @classmethod
    def keras_rank(cls, config, rank):
        return 2

    def infer(self, ins):
        t = ins[0]
        size = 1
        for d in t.shape:
            size *= _known(d, "every dimension of Flatten's input")
        return [TensorType(t.dtype, (size,))]


class Reshape(Layer):
    type: Literal["Reshape"] = "Reshape"
    aliases = ("reshape",)
    positional = ("target_shape",)
    target_shape: list[int]

    @field_validator("target_shape")
    @classmethod
    def _one_unknown(cls, v):
        if sum(d == -1 for d in v) > 1 or any(d == 0 or d < -1 for d in v):
            raise ValueError("target_shape takes positive sizes and at most one -1")
        return v

    @classmethod
    def keras_rank(cls, config, rank):
        return len(config["target_shape"]) + 1 if isinstance(config.get("target_shape"), list) else None

    def infer(self, ins):
        t = ins[0]
        size = math.prod(_known(d, "every dimension of Reshape's input") for d in t.shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ShapeError(f"cannot reshape {t} into {tuple(self.target_shape)}")
            shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        else:
            if known != size:
                raise ShapeError(f"cannot reshape {t} ({size} values) into {tuple(self.target_shape)} ({known} values)")
            shape = tuple(self.target_shape)
        return [TensorType(t.dtype, shape)]


class Permute(Layer):
    type: Literal["Permute"] = "Permute"
    keeps_rank = True
    aliases = ("permute",)
    positional = ("dims",)
    dims: list[int]

    def infer(self, ins):
        t = ins[0]
        if sorted(self.dims) != list(range(1, len(t.shape) + 1)):
            raise ShapeError(f"Permute dims {self.dims} must be a permutation of 1..{len(t.shape)}")
        return [TensorType(t.dtype, tuple(t.shape[d - 1] for d in self.dims), t.masked)]


class RepeatVector(Layer):
    type: Literal["RepeatVector"] = "RepeatVector"
    aliases = ("repeat_vector",)
    positional = ("n",)
    n: PositiveInt

    @classmethod
    def keras_rank(cls, config, rank):
        return 3

    def infer(self, ins):
        t = ins[0]
        if len(t.shape) != 1:
            raise ShapeError(f"RepeatVector needs a 2D input (batch, features), got {t}")
        return [TensorType(t.dtype, (self.n, t.shape[0]))]


class ActivityRegularization(Layer):
    type: Literal["ActivityRegularization"] = "ActivityRegularization"
    keeps_rank = True
    aliases = ("activity_regularization",)
    positional = ("l1", "l2")
    l1: NonNegativeFloat = 0.0
    l2: NonNegativeFloat = 0.0


class _SpatialDropout(Layer):
    """Dropout of whole channels: one draw per sample and channel (Keras's SpatialDropoutND)."""

    keeps_rank = True
    rank: ClassVar[int] = 1
    positional = ("rate",)
    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = None

    @property
    def noise_shape(self) -> list[int | None]:
        return [None, *[1] * self.rank, None]

    def infer(self, ins):
        t = ins[0]
        if len(t.shape) != self.rank + 1:
            raise ShapeError(f"{self.type} needs an input of rank {self.rank + 2} (batch, "
                             f"{'spatial, ' * self.rank}channels), got {t}")
        return [t]


class SpatialDropout1D(_SpatialDropout):
    type: Literal["SpatialDropout1D"] = "SpatialDropout1D"
    aliases = ("spatial_dropout1d",)


class SpatialDropout2D(_SpatialDropout):
    type: Literal["SpatialDropout2D"] = "SpatialDropout2D"
    aliases = ("spatial_dropout2d",)
    rank = 2


class SpatialDropout3D(_SpatialDropout):
    type: Literal["SpatialDropout3D"] = "SpatialDropout3D"
    aliases = ("spatial_dropout3d",)
    rank = 3


class GaussianNoise(Layer):
    """Adds N(0, stddev) noise in training; the identity at inference."""

    type: Literal["GaussianNoise"] = "GaussianNoise"
    keeps_rank = True
    aliases = ("gaussian_noise",)
    positional = ("stddev",)
    stddev: NonNegativeFloat
    seed: int | None = None


class GaussianDropout(Layer):
    """Multiplies by N(1, rate / (1 - rate)) noise in training; the identity at inference."""

    type: Literal["GaussianDropout"] = "GaussianDropout"
    keeps_rank = True
    aliases = ("gaussian_dropout",)
    positional = ("rate",)
    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = None


class AlphaDropout(Layer):
    """Dropout that keeps SELU's mean and variance, in training; the identity at inference."""

    type: Literal["AlphaDropout"] = "AlphaDropout"
    keeps_rank = True
    aliases = ("alpha_dropout",)
    positional = ("rate",)
    rate: float = Field(ge=0.0, lt=1.0)
    noise_shape: list[int | None] | None = None
    seed: int | None = None


class StochasticDepth(Layer):
    """ConvNeXt's drop-path: drops a residual branch for whole samples in training (keras.applications)."""

    type: Literal["StochasticDepth"] = "StochasticDepth"
    keeps_rank = True
    aliases = ("stochastic_depth", "drop_path")
    positional = ("drop_path_rate",)
    drop_path_rate: float = Field(ge=0.0, lt=1.0)
    keras_module = {3: "keras.src.applications.convnext"}  # tf.keras loads it only with custom_objects

    @property
    def rate(self) -> float:
        return self.drop_path_rate

    @property
    def noise_shape(self) -> list[int | None]:
        return [None]  # one draw per sample; the rest broadcast


class Rescaling(Layer):
    """x * scale + offset (per channel when given as lists): Keras's preprocessing Rescaling."""

    type: Literal["Rescaling"] = "Rescaling"
    keeps_rank = True
    aliases = ("rescaling", "rescale")
    positional = ("scale", "offset")
    scale: float | list[float]
    offset: float | list[float] = 0.0

    def infer(self, ins):
        t = ins[0]
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if isinstance(value, list) and (not t.shape or len(value) not in (1, t.shape[-1])):
                raise ShapeError(f"Rescaling's {name} has {len(value)} values for {t}")
        return [TensorType("float32" if t.dtype not in FLOAT_DTYPES else t.dtype, t.shape, t.masked)]


class Normalization(Layer):
    """(x - mean) / sqrt(variance) per feature (`invert`: the reverse), Keras's preprocessing layer:
    with `mean` and `variance` given, or adapted to data (then weights: mean, variance, count)."""

    type: Literal["Normalization"] = "Normalization"
    keeps_rank = True
    aliases = ("normalization", "standardize")
    axis: int = -1
    mean: float | list[float] | None = None
    variance: float | list[float] | None = None
    invert: bool = False

    @model_validator(mode="after")
    def _both_or_neither(self):
        if (self.mean is None) != (self.variance is None):
            raise ValueError("give both mean and variance, or neither (adapted: weights hold them)")
        if isinstance(self.mean, list) != isinstance(self.variance, list) or (
                isinstance(self.mean, list) and len(self.mean) != len(self.variance)):
            raise ValueError("mean and variance must have the same shape (Keras's rule): two numbers or two "
                             "lists of one length")
        return self

    def infer(self, ins):
        t = ins[0]
        axis = _axis(self.axis, len(t.shape), "Normalization")
        size = _known(t.shape[axis], "Normalization's axis")
        for name in ("mean", "variance"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) not in (1, size):
                raise ShapeError(f"Normalization's {name} has {len(value)} values for {size} features")
        return [TensorType("float32" if t.dtype not in FLOAT_DTYPES else t.dtype, t.shape, t.masked)]

    def weights(self, ins):
        if self.mean is not None:
            return []
        size = ins[0].shape[_axis(self.axis, len(ins[0].shape), "Normalization")]
        return [Weight("mean", (size,), Zeros(), False), Weight("variance", (size,), Ones(), False),
                Weight("count", (), Zeros(), False)]


class UnitNormalization(Layer):
    """x / ||x||, the L2 norm taken over `axis` (Keras: sum of squares floored at 1e-12)."""

    type: Literal["UnitNormalization"] = "UnitNormalization"
    keeps_rank = True
    aliases = ("unit_normalization", "l2_normalize")
    positional = ("axis",)
    axis: int | list[int] = -1

    def axes(self, rank: int) -> list[int]:
        """The normalized axes as indices into the batch-less shape."""
        return sorted(_axis(a, rank, "UnitNormalization") for a in
                      (self.axis if isinstance(self.axis, list) else [self.axis]))

    def infer(self, ins):
        _floating(ins[0], "UnitNormalization")
        self.axes(len(ins[0].shape))
        return [ins[0]]


class LayerScale(Layer):
    """ConvNeXt's learned per-channel scale of a residual branch: x * gamma (keras.applications)."""

    type: Literal["LayerScale"] = "LayerScale"
    keeps_rank = True
    aliases = ("layer_scale",)
    positional = ("init_values", "projection_dim")
    init_values: float
    projection_dim: PositiveInt
    keras_module = {3: "keras.src.applications.convnext"}  # tf.keras loads it only with custom_objects

    def infer(self, ins):
        t = ins[0]
        _floating(t, "LayerScale")
        if not t.shape or t.shape[-1] != self.projection_dim:
            raise ShapeError(f"LayerScale(projection_dim={self.projection_dim}) needs that many channels, got {t}")
        return [t]

    def weights(self, ins):
        return [Weight("gamma", (self.projection_dim,), Constant(value=self.init_values))]


class Masking(Layer):
    type: Literal["Masking"] = "Masking"
    keeps_rank = True
    aliases = ("masking", "mask")
    positional = ("mask_value",)
    mask_value: float = 0.0

    def infer(self, ins):
        t = ins[0]
        if len(t.shape) < 2:
            raise ShapeError(f"Masking needs a sequence input (batch, time, features), got {t}")
        return [TensorType(t.dtype, t.shape, masked=True)]


class Lambda(Layer):
    """A safe, elementwise expression of its input `x`: `lambda(x * x + 1)`. Never Python code."""

    type: Literal["Lambda"] = "Lambda"
    aliases = ("lambda",)
    no_keras = "nnspec's lambda has no safe Keras equivalent (Keras's Lambda is Python code)"
    positional = ("expression",)
    expression: str

    @field_validator("expression")
    @classmethod
    def _parse(cls, v):
        from .expr import canonical_expression

        return canonical_expression(v)

    def infer(self, ins):
        _floating(ins[0], "Lambda")
        return [ins[0]]


class Embedding(Layer):
    type: Literal["Embedding"] = "Embedding"
    aliases = ("embedding",)
    positional = ("input_dim", "output_dim")
    input_dim: PositiveInt
    output_dim: PositiveInt
    embeddings_initializer: Initializer = RandomUniform()
    embeddings_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    embeddings_constraint: Constraint | None = None
    mask_zero: bool = False
    input_length: int | None = None

    @classmethod
    def keras_rank(cls, config, rank):
        return None if rank is None else rank + 1

    def infer(self, ins):
        t = ins[0]
        if t.dtype not in INT_DTYPES:
            raise ShapeError(f"Embedding needs integer indices, got {t.dtype}; declare the input as int32[...]")
        return [TensorType("float32", (*t.shape, self.output_dim), self.mask_zero)]

    def weights(self, ins):
        return [Weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer, True,
                       self.embeddings_regularizer, self.embeddings_constraint)]


# ---- convolution and pooling --------------------------------------------------------

IntOrTuple = int | list[int]


def _spatial_out(size: int | None, window: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    out = windows.keras_output_size(size, window, stride, padding, dilation)
    if out is not None and out < 1:
        raise ShapeError(f"a window of {windows.extent(window, dilation)} does not fit an input of size {size} "
                         "with padding 'valid'")
    return out


class _Spatial(Layer):
    """Layers over `rank` spatial dimensions followed by channels (channels-last, as in Keras)."""

    keeps_rank = True

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True, defer_build=True)
    rank: ClassVar[int] = 2

    @field_validator("kernel_size", "strides", "dilation_rate", "pool_size", mode="after", check_fields=False)
    @classmethod
    def _tuple(cls, v, info):
        if v is None:
            return v
        v = [v] * cls.rank if isinstance(v, int) else list(v)
        if len(v) != cls.rank or any(d < 1 for d in v):
            raise ValueError(f"{info.field_name} takes {cls.rank} positive integer(s), got {v}")
        return v

    def _check_rank(self, t: TensorType) -> None:
        if len(t.shape) != self.rank + 1:
            raise ShapeError(
                f"{self.type} needs an input of rank {self.rank + 2} (batch, {'spatial, ' * self.rank}channels), got {t}"
            )
        _floating(t, self.type)


def _window_outputs(layer, t: TensorType) -> tuple[int | None, ...]:
    """Spatial output sizes of a window layer (kernel_size, strides, padding, dilation_rate)."""
    return tuple(_spatial_out(s, k, st, layer.padding, d)
                 for s, k, st, d in zip(t.shape[:-1], layer.kernel_size, layer.strides, layer.dilation_rate))


def _strides_or_dilation(layer) -> None:
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError("strides > 1 cannot be combined with dilation_rate > 1 (as in Keras)")


class _Conv(_Spatial, _Kernel):
    positional = ("filters", "kernel_size", "strides", "padding", "activation")
    filters: PositiveInt
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Literal["valid", "same"] = "valid"
    dilation_rate: IntOrTuple = 1
    groups: PositiveInt = 1

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        _strides_or_dilation(self)
        if self.filters % self.groups:
            raise ValueError(f"filters ({self.filters}) must be divisible by groups ({self.groups})")
        return self

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        channels = _known(t.shape[-1], f"{self.type}'s input channels")
        if channels % self.groups:
            raise ShapeError(f"input channels ({channels}) must be divisible by groups ({self.groups})")
        return [TensorType(t.dtype, (*_window_outputs(self, t), self.filters))]

    def weights(self, ins):
        kernel = (*self.kernel_size, ins[0].shape[-1] // self.groups, self.filters)
        return self._kernel_and_bias(kernel, self.filters)


class Conv1D(_Conv):
    type: Literal["Conv1D"] = "Conv1D"
    aliases = ("conv1d", "convolution1d")
    rank = 1
    padding: Literal["valid", "same", "causal"] = "valid"


class Conv2D(_Conv):
    type: Literal["Conv2D"] = "Conv2D"
    aliases = ("conv2d", "convolution2d")
    rank = 2


class Conv3D(_Conv):
    type: Literal["Conv3D"] = "Conv3D"
    aliases = ("conv3d", "convolution3d")
    rank = 3


class _ConvTranspose(_Spatial, _Kernel):
    """The transpose (gradient) of a conv: upsamples by `strides`. Kernel (*k, filters, input channels)."""

    positional = ("filters", "kernel_size", "strides", "padding", "activation")
    filters: PositiveInt
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Literal["valid", "same"] = "valid"
    output_padding: IntOrTuple | None = None
    dilation_rate: IntOrTuple = 1

    @model_validator(mode="after")
    def _output_padding(self):
        _strides_or_dilation(self)
        if self.output_padding is not None:
            padding = [self.output_padding] * self.rank if isinstance(self.output_padding, int) else self.output_padding
            if len(padding) != self.rank or any(not 0 <= p < s for p, s in zip(padding, self.strides)):
                raise ValueError(f"output_padding takes {self.rank} integer(s) from 0 to below the strides "
                                 f"{self.strides}, got {self.output_padding}")
            if padding != self.output_padding:
                self.output_padding = padding
        return self

    def output_paddings(self) -> list[int | None]:
        return self.output_padding or [None] * self.rank

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        _known(t.shape[-1], f"{self.type}'s input channels")
        spatial = tuple(windows.keras_transposed_output_size(s, k, st, self.padding, d, op) for s, k, st, d, op in
                        zip(t.shape[:-1], self.kernel_size, self.strides, self.dilation_rate, self.output_paddings()))
        return [TensorType(t.dtype, (*spatial, self.filters))]

    def weights(self, ins):
        return self._kernel_and_bias((*self.kernel_size, self.filters, ins[0].shape[-1]), self.filters)


class Conv1DTranspose(_ConvTranspose):
    type: Literal["Conv1DTranspose"] = "Conv1DTranspose"
    aliases = ("conv1d_transpose", "deconv1d")
    rank = 1


class Conv2DTranspose(_ConvTranspose):
    type: Literal["Conv2DTranspose"] = "Conv2DTranspose"
    aliases = ("conv2d_transpose", "deconv2d")
    rank = 2


class Conv3DTranspose(_ConvTranspose):
    type: Literal["Conv3DTranspose"] = "Conv3DTranspose"
    aliases = ("conv3d_transpose", "deconv3d")
    rank = 3


class _Depthwise(_Spatial):
    """A kernel per input channel (depth_multiplier outputs each): ONNX Conv with one group per channel."""

    positional = ("kernel_size", "strides", "padding", "depth_multiplier", "activation")
    kernel_size: IntOrTuple
    strides: IntOrTuple = 1
    padding: Literal["valid", "same"] = "valid"
    depth_multiplier: PositiveInt = 1
    dilation_rate: IntOrTuple = 1
    activation: Activation = Linear()
    use_bias: bool = True
    depthwise_initializer: Initializer = GlorotUniform()
    bias_initializer: Initializer = Zeros()
    depthwise_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    depthwise_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        _strides_or_dilation(self)
        return self

    def _depthwise_out(self, t: TensorType) -> tuple[tuple[int | None, ...], int]:
        self._check_rank(t)
        return _window_outputs(self, t), _known(t.shape[-1], f"{self.type}'s input channels") * self.depth_multiplier

    def _depthwise_kernel(self, t: TensorType, name: str) -> Weight:
        return Weight(name, (*self.kernel_size, t.shape[-1], self.depth_multiplier), self.depthwise_initializer, True,
                      self.depthwise_regularizer, self.depthwise_constraint)

    def _bias(self, size: int) -> list[Weight]:
        return [Weight("bias", (size,), self.bias_initializer, True, self.bias_regularizer,
                       self.bias_constraint)] if self.use_bias else []


class _DepthwiseConv(_Depthwise):
    def infer(self, ins):
        spatial, channels = self._depthwise_out(ins[0])
        return [TensorType(ins[0].dtype, (*spatial, channels))]

    def weights(self, ins):  # Keras 3 names the kernel "kernel" (Keras 2: "depthwise_kernel")
        t = ins[0]
        return [self._depthwise_kernel(t, "kernel"), *self._bias(t.shape[-1] * self.depth_multiplier)]


class DepthwiseConv1D(_DepthwiseConv):
    type: Literal["DepthwiseConv1D"] = "DepthwiseConv1D"
    aliases = ("depthwise_conv1d",)
    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    type: Literal["DepthwiseConv2D"] = "DepthwiseConv2D"
    aliases = ("depthwise_conv2d",)
    rank = 2


class _SeparableConv(_Depthwise):
    """A depthwise convolution, then a 1x1 convolution to `filters` channels (the bias after both)."""

    positional = ("filters", "kernel_size", "strides", "padding", "activation")
    filters: PositiveInt
    pointwise_initializer: Initializer = GlorotUniform()
    pointwise_regularizer: Regularizer | None = None
    pointwise_constraint: Constraint | None = None

    def infer(self, ins):
        spatial, _ = self._depthwise_out(ins[0])
        return [TensorType(ins[0].dtype, (*spatial, self.filters))]

    def weights(self, ins):
        t = ins[0]
        pointwise = Weight("pointwise_kernel", (*[1] * self.rank, t.shape[-1] * self.depth_multiplier, self.filters),
                           self.pointwise_initializer, True, self.pointwise_regularizer, self.pointwise_constraint)
        return [self._depthwise_kernel(t, "depthwise_kernel"), pointwise, *self._bias(self.filters)]


class SeparableConv1D(_SeparableConv):
    type: Literal["SeparableConv1D"] = "SeparableConv1D"
    aliases = ("separable_conv1d", "separable_convolution1d")
    rank = 1


class SeparableConv2D(_SeparableConv):
    type: Literal["SeparableConv2D"] = "SeparableConv2D"
    aliases = ("separable_conv2d", "separable_convolution2d")
    rank = 2


class _Margins(_Spatial):
    """ZeroPadding and Cropping: cells added or cut at both ends of each spatial axis, held as Keras
    serializes them: (before, after) in 1-D, one (before, after) pair per axis otherwise."""

    @field_validator("padding", "cropping", mode="after", check_fields=False)
    @classmethod
    def _pairs(cls, v, info):
        n = cls.rank
        if isinstance(v, int):
            pairs = [[v, v]] * n
        elif all(isinstance(d, int) for d in v) and len(v) == (2 if n == 1 else n):
            pairs = [list(v)] if n == 1 else [[d, d] for d in v]
        elif all(isinstance(p, list) and len(p) == 2 for p in v) and len(v) == n:
            pairs = [list(p) for p in v]
        else:
            form = "an int or (before, after)" if n == 1 else f"an int, {n} ints, or {n} (before, after) pairs"
            raise ValueError(f"{info.field_name} takes {form}, got {v}")
        if any(d < 0 for p in pairs for d in p):
            raise ValueError(f"{info.field_name} takes non-negative sizes, got {v}")
        return pairs[0] if n == 1 else pairs

    def pairs(self) -> list[tuple[int, int]]:
        """(before, after) per spatial axis."""
        v = getattr(self, self.margin)
        return [tuple(v)] if self.rank == 1 else [tuple(p) for p in v]

    margin: ClassVar[str]
    sign: ClassVar[int]  # +1: the margins are added, -1: cut

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        spatial = tuple(None if s is None else s + self.sign * (b + a) for s, (b, a) in zip(t.shape[:-1], self.pairs()))
        if any(s is not None and s < 1 for s in spatial):
            raise ShapeError(f"{self.type} {self.pairs()} leaves nothing of an input {t}")
        return [TensorType(t.dtype, (*spatial, t.shape[-1]))]


class _ZeroPadding(_Margins):
    positional = ("padding",)
    margin = "padding"
    sign = 1
    padding: int | list[int] | list[list[int]] = 1


class ZeroPadding1D(_ZeroPadding):
    type: Literal["ZeroPadding1D"] = "ZeroPadding1D"
    aliases = ("zero_padding1d",)
    rank = 1


class ZeroPadding2D(_ZeroPadding):
    type: Literal["ZeroPadding2D"] = "ZeroPadding2D"
    aliases = ("zero_padding2d",)
    rank = 2


class ZeroPadding3D(_ZeroPadding):
    type: Literal["ZeroPadding3D"] = "ZeroPadding3D"
    aliases = ("zero_padding3d",)
    rank = 3


class _Cropping(_Margins):
    positional = ("cropping",)
    margin = "cropping"
    sign = -1
    cropping: int | list[int] | list[list[int]] = 0


class Cropping1D(_Cropping):
    type: Literal["Cropping1D"] = "Cropping1D"
    aliases = ("cropping1d", "crop1d")
    rank = 1
    cropping: int | list[int] | list[list[int]] = 1


class Cropping2D(_Cropping):
    type: Literal["Cropping2D"] = "Cropping2D"
    aliases = ("cropping2d", "crop2d")
    rank = 2


class Cropping3D(_Cropping):
    type: Literal["Cropping3D"] = "Cropping3D"
    aliases = ("cropping3d", "crop3d")
    rank = 3


class _UpSampling(_Spatial):
    """Each cell repeated `size` times along each spatial axis (or, 2-D, interpolated bilinearly)."""

    positional = ("size",)
    size: IntOrTuple = 2

    @field_validator("size", mode="after")
    @classmethod
    def _sizes(cls, v):
        v = [v] * cls.rank if isinstance(v, int) else list(v)
        if len(v) != cls.rank or any(d < 1 for d in v):
            raise ValueError(f"size takes {cls.rank} positive integer(s), got {v}")
        return v

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        return [TensorType(t.dtype, (*(None if d is None else d * f for d, f in zip(t.shape[:-1], self.size)),
                                     t.shape[-1]))]


class UpSampling1D(_UpSampling):
    type: Literal["UpSampling1D"] = "UpSampling1D"
    aliases = ("upsampling1d", "up_sampling1d")
    rank = 1


class UpSampling2D(_UpSampling):
    type: Literal["UpSampling2D"] = "UpSampling2D"
    aliases = ("upsampling2d", "up_sampling2d")
    rank = 2
    interpolation: Literal["nearest", "bilinear"] = "nearest"


class UpSampling3D(_UpSampling):
    type: Literal["UpSampling3D"] = "UpSampling3D"
    aliases = ("upsampling3d", "up_sampling3d")
    rank = 3


class _Image(_Spatial):
    """Layers that take images (batch, height, width, channels) to height x width."""

    positional = ("height", "width")
    height: PositiveInt
    width: PositiveInt

    def _known_image(self, t: TensorType) -> tuple[int, int]:
        self._check_rank(t)
        return _known(t.shape[0], f"{self.type}'s input height"), _known(t.shape[1], f"{self.type}'s input width")

    def infer(self, ins):
        self._known_image(ins[0])
        return [TensorType(ins[0].dtype, (self.height, self.width, ins[0].shape[-1]))]

    def aspect_crop(self, t: TensorType) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the largest centred window of the target's aspect ratio
        (Keras's crop_to_aspect_ratio, and CenterCrop of an input smaller than its target)."""
        h, w = self._known_image(t)
        crop_h = max(min(h, int(float(w * self.height) / self.width)), 1)
        crop_w = max(min(w, int(float(h * self.width) / self.height)), 1)
        return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2), crop_h, crop_w


class Resizing(_Image):
    type: Literal["Resizing"] = "Resizing"
    aliases = ("resizing", "resize")
    interpolation: Literal["bilinear", "nearest"] = "bilinear"
    crop_to_aspect_ratio: bool = False


class CenterCrop(_Image):
    """The centred height x width window; an input smaller than that is cropped to the target's
    aspect ratio and resized bilinearly (as Keras does)."""

    type: Literal["CenterCrop"] = "CenterCrop"
    aliases = ("center_crop",)


class _Pool(_Spatial):
    positional = ("pool_size", "strides", "padding")
    pool_size: IntOrTuple = 2
    strides: IntOrTuple | None = None  # None: the pool size, as in Keras
    padding: Literal["valid", "same"] = "valid"

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        strides = self.strides or self.pool_size
        spatial = tuple(_spatial_out(s, p, st, self.padding) for s, p, st in zip(t.shape[:-1], self.pool_size, strides))
        return [TensorType(t.dtype, (*spatial, t.shape[-1]))]


class MaxPooling1D(_Pool):
    type: Literal["MaxPooling1D"] = "MaxPooling1D"
    aliases = ("max_pooling1d", "max_pool1d", "maxpool1d")
    rank = 1


class MaxPooling2D(_Pool):
    type: Literal["MaxPooling2D"] = "MaxPooling2D"
    aliases = ("max_pooling2d", "max_pool2d", "maxpool2d")
    rank = 2


class AveragePooling1D(_Pool):
    type: Literal["AveragePooling1D"] = "AveragePooling1D"
    aliases = ("average_pooling1d", "avg_pool1d", "avgpool1d")
    rank = 1


class AveragePooling2D(_Pool):
    type: Literal["AveragePooling2D"] = "AveragePooling2D"
    aliases = ("average_pooling2d", "avg_pool2d", "avgpool2d")
    rank = 2


class _GlobalPool(_Spatial):
    keepdims: bool = False

    @classmethod
    def keras_rank(cls, config, rank):
        return None if rank is None else rank if config.get("keepdims") else rank - 1

    def infer(self, ins):
        t = ins[0]
        self._check_rank(t)
        shape = (*([1] * self.rank), t.shape[-1]) if self.keepdims else (t.shape[-1],)
        return [TensorType(t.dtype, shape)]


class GlobalMaxPooling1D(_GlobalPool):
    type: Literal["GlobalMaxPooling1D"] = "GlobalMaxPooling1D"
    aliases = ("global_max_pooling1d", "global_max_pool1d")
    rank = 1


class GlobalMaxPooling2D(_GlobalPool):
    type: Literal["GlobalMaxPooling2D"] = "GlobalMaxPooling2D"
    aliases = ("global_max_pooling2d", "global_max_pool2d")
    rank = 2


class GlobalAveragePooling1D(_GlobalPool):
    type: Literal["GlobalAveragePooling1D"] = "GlobalAveragePooling1D"
    aliases = ("global_average_pooling1d", "global_avg_pool1d")
    rank = 1


class GlobalAveragePooling2D(_GlobalPool):
    type: Literal["GlobalAveragePooling2D"] = "GlobalAveragePooling2D"
    aliases = ("global_average_pooling2d", "global_avg_pool2d")
    rank = 2


# ---- normalization ---------------------------------------------------------------


class _Norm(Layer):
    keeps_rank = True
    axis: int = -1
    epsilon: float = Field(1e-3, gt=0)
    center: bool = True
    scale: bool = True
    beta_initializer: Initializer = Zeros()
    gamma_initializer: Initializer = Ones()
    beta_regularizer: Regularizer | None = None
    gamma_regularizer: Regularizer | None = None
    beta_constraint: Constraint | None = None
    gamma_constraint: Constraint | None = None

    def infer(self, ins):
        t = ins[0]
        _floating(t, self.type)
        _known(t.shape[_axis(self.axis, len(t.shape), self.type)], f"{self.type}'s normalized axis")
        return [t]

    def _gamma_beta(self, size: int | tuple[int, ...]) -> list[Weight]:
        shape = size if isinstance(size, tuple) else (size,)
        out = []
        if self.scale:
            out.append(Weight("gamma", shape, self.gamma_initializer, True, self.gamma_regularizer,
                              self.gamma_constraint))
        if self.center:
            out.append(Weight("beta", shape, self.beta_initializer, True, self.beta_regularizer,
                              self.beta_constraint))
        return out


class BatchNormalization(_Norm):
    type: Literal["BatchNormalization"] = "BatchNormalization"
    aliases = ("batch_normalization", "batch_norm", "batchnorm")
    momentum: float = Field(0.99, ge=0.0, le=1.0)
    moving_mean_initializer: Initializer = Zeros()
    moving_variance_initializer: Initializer = Ones()

    def weights(self, ins):
        size = ins[0].shape[_axis(self.axis, len(ins[0].shape), self.type)]
        return [*self._gamma_beta(size),
                Weight("moving_mean", (size,), self.moving_mean_initializer, False),
                Weight("moving_variance", (size,), self.moving_variance_initializer, False)]


class LayerNormalization(_Norm):
    """Normalizes each sample over `axis` (one axis, or several: gamma and beta then span them all)."""

    type: Literal["LayerNormalization"] = "LayerNormalization"
    aliases = ("layer_normalization", "layer_norm", "layernorm")
    axis: int | list[int] = -1

    @field_validator("axis")
    @classmethod
    def _one_axis_as_int(cls, v):
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    def axes(self, rank: int) -> list[int]:
        """The normalized axes as indices into the batch-less shape."""
        return sorted({_axis(a, rank, self.type) for a in (self.axis if isinstance(self.axis, list) else [self.axis])})

    def infer(self, ins):
        t = ins[0]
        _floating(t, self.type)
        for a in self.axes(len(t.shape)):
            _known(t.shape[a], f"{self.type}'s normalized axis")
        return [t]

    def weights(self, ins):
        return self._gamma_beta(tuple(ins[0].shape[a] for a in self.axes(len(ins[0].shape))))


class GroupNormalization(_Norm):
    """Normalizes each sample over groups of channels (and every other non-batch axis)."""

    type: Literal["GroupNormalization"] = "GroupNormalization"
    aliases = ("group_normalization", "group_norm", "groupnorm")
    positional = ("groups",)
    groups: PositiveInt = 32

    def infer(self, ins):
        (t,) = super().infer(ins)
        if _axis(self.axis, len(t.shape), self.type) != len(t.shape) - 1:
            raise ShapeError("GroupNormalization normalizes the channels, the last axis (axis=-1)")
        if t.shape[-1] % self.groups:
            raise ShapeError(f"GroupNormalization: {t.shape[-1]} channels do not split into {self.groups} groups")
        return [t]

    def weights(self, ins):
        return self._gamma_beta(ins[0].shape[-1])


# ---- recurrent -----------------------------------------------------------------------


class _Recurrent(Layer):
    """Inputs: the sequence, then optionally its initial states (Keras's `initial_state`: h, or
    h and c for LSTM), each (batch, units)."""

    positional = ("units", "activation")
    gates: ClassVar[int] = 1
    n_states: ClassVar[int] = 1
    n_inputs = (1, 2)
    extra_inputs_keyword = "initial_state"
    units: PositiveInt
    activation: Activation = Tanh()
    use_bias: bool = True
    kernel_initializer: Initializer = GlorotUniform()
    recurrent_initializer: Initializer = Orthogonal()
    bias_initializer: Initializer = Zeros()
    kernel_regularizer: Regularizer | None = None
    recurrent_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    recurrent_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False

    @classmethod
    def keras_rank(cls, config, rank):
        return 3 if config.get("return_sequences") else 2

    def infer(self, ins):
        t = ins[0]
        _floating(t, self.type)
        if len(t.shape) != 2:
            raise ShapeError(f"{self.type} needs a sequence input (batch, time, features), got {t}")
        _known(t.shape[1], f"{self.type}'s input features")
        self.check_initial_state(t, ins[1:])
        seq = (t.shape[0], self.units) if self.return_sequences else (self.units,)
        out = [TensorType(t.dtype, seq, t.masked and self.return_sequences)]
        if self.return_state:
            out += [TensorType(t.dtype, (self.units,))] * self.n_states
        return out

    def check_initial_state(self, x: TensorType, states: list[TensorType]) -> None:
        if not states:
            return
        if len(states) != self.n_states:
            raise ShapeError(f"{self.type} takes {self.n_states} initial state tensor(s), got {len(states)}")
        for s in states:
            want = TensorType(x.dtype, (self.units,))
            if (s.shape, s.dtype) != (want.shape, want.dtype):
                raise ShapeError(f"{self.type}'s initial state must be {want} (its units), got {s}")

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def weights(self, ins):
        g = self.gates * self.units
        out = [Weight("kernel", (ins[0].shape[1], g), self.kernel_initializer, True, self.kernel_regularizer,
                      self.kernel_constraint),
               Weight("recurrent_kernel", (self.units, g), self.recurrent_initializer, True,
                      self.recurrent_regularizer, self.recurrent_constraint)]
        if self.use_bias:
            out.append(Weight("bias", self._bias_shape(), self.bias_initializer, True, self.bias_regularizer,
                              self.bias_constraint))
        return out


class SimpleRNN(_Recurrent):
    type: Literal["SimpleRNN"] = "SimpleRNN"
    aliases = ("simple_rnn", "rnn")


class GRU(_Recurrent):
    type: Literal["GRU"] = "GRU"
    aliases = ("gru",)
    gates = 3
    recurrent_activation: Activation = Sigmoid()
    reset_after: bool = True

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)


class LSTM(_Recurrent):
    type: Literal["LSTM"] = "LSTM"
    aliases = ("lstm",)
    gates = 4
    n_states = 2
    n_inputs = (1, 3)
    recurrent_activation: Activation = Sigmoid()
    unit_forget_bias: bool = True


RECURRENT = Family("recurrent layer", [SimpleRNN, GRU, LSTM], key="type")


class Bidirectional(Layer):
    """Inputs: the sequence, then optionally the forward layer's initial states and the backward
    layer's (Keras's order)."""

    type: Literal["Bidirectional"] = "Bidirectional"
    aliases = ("bidirectional",)
    positional = ("layer", "merge_mode")
    n_inputs = (1, 5)
    extra_inputs_keyword = "initial_state"
    layer: RECURRENT.type
    merge_mode: Literal["concat", "sum", "mul", "ave"] | None = "concat"
    backward_layer: RECURRENT.type | None = None

    @classmethod
    def keras_rank(cls, config, rank):
        return 3 if config.get("layer", {}).get("config", {}).get("return_sequences") else 2

    def _backward(self) -> _Recurrent:
        return self.backward_layer or self.layer.model_copy(update={"go_backwards": not self.layer.go_backwards})

    def split_states(self, states: list) -> tuple[list, list]:
        """The initial states given to Bidirectional -> the forward layer's and the backward layer's."""
        if states and len(states) != 2 * self.layer.n_states:
            raise ShapeError(f"Bidirectional({self.layer.type}) takes {2 * self.layer.n_states} initial state "
                             f"tensor(s) (forward, then backward), got {len(states)}")
        half = len(states) // 2
        return states[:half], states[half:]

    def infer(self, ins):
        forward_states, backward_states = self.split_states(ins[1:])
        fwd = self.layer.infer([ins[0], *forward_states])
        bwd = self._backward().infer([ins[0], *backward_states])
        if fwd[0].shape[:-1] != bwd[0].shape[:-1]:
            raise ShapeError("the forward and backward layers of Bidirectional must agree on return_sequences")
        t = fwd[0]
        if self.merge_mode is None:
            outs = [fwd[0], bwd[0]]
        elif self.merge_mode == "concat":
            outs = [TensorType(t.dtype, (*t.shape[:-1], t.shape[-1] + bwd[0].shape[-1]), t.masked)]
        else:
            if t.shape != bwd[0].shape:
                raise ShapeError(f"merge_mode '{self.merge_mode}' needs both directions to have the same units")
            outs = [t]
        return outs + fwd[1:] + bwd[1:]

    def weights(self, ins):
        return self.layer.weights(ins[:1]) + self._backward().weights(ins[:1])


# ---- wrappers and merges ----------------------------------------------------------------


class TimeDistributed(Layer):
    type: Literal["TimeDistributed"] = "TimeDistributed"
    aliases = ("time_distributed",)
    positional = ("layer",)
    layer: "AnyLayer"

    def _inner(self, t: TensorType) -> TensorType:
        if len(t.shape) < 2:
            raise ShapeError(f"TimeDistributed needs an input of rank 3 or more (batch, time, ...), got {t}")
        return TensorType(t.dtype, t.shape[1:])

    def infer(self, ins):
        t = ins[0]
        if self.layer.n_inputs[0] > 1:
            raise ShapeError(f"TimeDistributed wraps layers that take one tensor; {self.layer.type} takes "
                             f"{self.layer.n_inputs[0]} or more")
        out = self.layer.infer([self._inner(t)])
        if len(out) != 1:
            raise ShapeError("TimeDistributed wraps layers with a single output")
        return [TensorType(out[0].dtype, (t.shape[0], *out[0].shape), t.masked)]

    def weights(self, ins):
        return self.layer.weights([self._inner(ins[0])])


class _Merge(Layer):
    keeps_rank = True
    n_inputs = (2, None)

    def infer(self, ins):
        """Inputs of one rank whose sizes agree or are 1 (Keras broadcasts them: squeeze-and-excite's
        (h, w, c) * (1, 1, c)); anything else is a mistake."""
        if len({len(t.shape) for t in ins}) > 1:
            raise ShapeError(f"{self.type} needs inputs of one rank, got {', '.join(str(t) for t in ins)}")
        shape = []
        for dims in zip(*(t.shape for t in ins)):
            sizes = {d for d in dims if d != 1}
            if len(sizes - {None}) > 1:
                raise ShapeError(f"{self.type} needs inputs of one shape (or sizes of 1, which broadcast), got "
                                 + ", ".join(str(t) for t in ins))
            shape.append((sizes - {None}).pop() if sizes - {None} else None if None in sizes else 1)
        for t in ins:
            _floating(t, self.type)
        return [TensorType(ins[0].dtype, tuple(shape), any(t.masked for t in ins))]


class Add(_Merge):
    type: Literal["Add"] = "Add"
    aliases = ("add",)


class Subtract(_Merge):
    type: Literal["Subtract"] = "Subtract"
    aliases = ("subtract", "sub")
    n_inputs = (2, 2)


class Multiply(_Merge):
    type: Literal["Multiply"] = "Multiply"
    aliases = ("multiply", "mul")


class Average(_Merge):
    type: Literal["Average"] = "Average"
    aliases = ("average", "avg")


class Maximum(_Merge):
    type: Literal["Maximum"] = "Maximum"
    aliases = ("maximum",)


class Minimum(_Merge):
    type: Literal["Minimum"] = "Minimum"
    aliases = ("minimum",)


class Concatenate(_Merge):
    type: Literal["Concatenate"] = "Concatenate"
    aliases = ("concatenate", "concat")
    positional = ("axis",)
    axis: int = -1

    def infer(self, ins):
        rank = len(ins[0].shape)
        if any(len(t.shape) != rank for t in ins):
            raise ShapeError(f"Concatenate needs inputs of one rank, got {', '.join(str(t) for t in ins)}")
        axis = _axis(self.axis, rank, "Concatenate")
        for t in ins:
            _floating(t, "Concatenate")
            if t.shape[:axis] + t.shape[axis + 1:] != ins[0].shape[:axis] + ins[0].shape[axis + 1:]:
                raise ShapeError(
                    f"Concatenate on axis {self.axis} needs all other dimensions equal, got "
                    + ", ".join(str(x) for x in ins)
                )
        sizes = [t.shape[axis] for t in ins]
        total = None if None in sizes else sum(sizes)
        shape = (*ins[0].shape[:axis], total, *ins[0].shape[axis + 1:])
        return [TensorType(ins[0].dtype, shape, any(t.masked for t in ins))]


class Dot(Layer):
    """Batched dot product of two tensors over `axes` (Keras's batch_dot); `normalize` takes
    cosine similarities (each input L2-normalized along its axis first)."""

    type: Literal["Dot"] = "Dot"
    aliases = ("dot",)
    positional = ("axes",)
    n_inputs = (2, 2)
    axes: int | list[int]
    normalize: bool = False

    def pair(self, ranks: tuple[int, int]) -> tuple[int, int]:
        """The contracted axis of each input, as an index into its batch-less shape."""
        axes = self.axes if isinstance(self.axes, list) else [self.axes, self.axes]
        if len(axes) != 2:
            raise ShapeError(f"Dot takes one axis or two, got {self.axes}")
        return tuple(_axis(a, r, "Dot") for a, r in zip(axes, ranks))

    def infer(self, ins):
        x, y = ins
        for t in ins:
            _floating(t, "Dot")
        ax, ay = self.pair((len(x.shape), len(y.shape)))
        if None in (x.shape[ax], y.shape[ay]) or x.shape[ax] != y.shape[ay]:
            raise ShapeError(f"Dot on axes {self.axes} needs equal known sizes, got {x} and {y}")
        rest = [d for i, d in enumerate(x.shape) if i != ax] + [d for i, d in enumerate(y.shape) if i != ay]
        return [TensorType(x.dtype, tuple(rest) or (1,))]



# ---- attention --------------------------------------------------------------------------


class _Attention(Layer):
    """Fields of Keras's attention layers. `use_causal_mask` and `return_attention_scores` are
    arguments of a Keras call (written in its inbound node, not its config): `call_arguments`."""

    n_inputs = (2, 3)  # query, value[, key]; the key is the value when not given
    call_arguments: ClassVar[tuple[str, ...]] = ("use_causal_mask", "return_attention_scores")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_causal_mask: bool = False
    return_attention_scores: bool = False

    @classmethod
    def keras_rank(cls, config, rank):
        return 3

    def _sequences(self, ins: list[TensorType]) -> tuple[TensorType, TensorType, TensorType]:
        """query, value, key: each (time, features), float, with known features."""
        q, v, k = ins[0], ins[1], ins[2] if len(ins) > 2 else ins[1]
        for t, what in ((q, "query"), (v, "value"), (k, "key")):
            _floating(t, self.type)
            if len(t.shape) != 2:
                raise ShapeError(f"{self.type} needs {what} of rank 3 (batch, time, features), got {t}")
            _known(t.shape[1], f"{self.type}'s {what} features")
        if v.shape[0] is not None and k.shape[0] is not None and v.shape[0] != k.shape[0]:
            raise ShapeError(f"{self.type} needs key and value of one length, got {k} and {v}")
        return q, v, k

    def _with_scores(self, out: TensorType, scores: tuple) -> list[TensorType]:
        return [out, TensorType(out.dtype, scores)] if self.return_attention_scores else [out]


class _DotAttention(_Attention):
    """Attention and AdditiveAttention: the output is softmax(scores(query, key)) @ value."""

    def infer(self, ins):
        q, v, k = self._sequences(ins)
        if q.shape[1] != k.shape[1]:
            raise ShapeError(f"{self.type} needs query and key of one feature size, got {q} and {k}")
        return self._with_scores(TensorType(q.dtype, (q.shape[0], v.shape[1]), q.masked), (q.shape[0], k.shape[0]))


class Attention(_DotAttention):
    """Luong-style attention: scores are query . key (score_mode dot, times a learned scale with
    use_scale) or sum(tanh(query + key)) times a learned weight (score_mode concat)."""

    type: Literal["Attention"] = "Attention"
    aliases = ("attention", "dot_attention")
    use_scale: bool = False
    score_mode: Literal["dot", "concat"] = "dot"

    def weights(self, ins):
        out = [Weight("scale", (), Ones())] if self.use_scale else []
        return out + ([Weight("concat_score_weight", (), Ones())] if self.score_mode == "concat" else [])


class AdditiveAttention(_DotAttention):
    """Bahdanau-style attention: scores are sum(scale * tanh(query + key)) over features."""

    type: Literal["AdditiveAttention"] = "AdditiveAttention"
    aliases = ("additive_attention",)
    use_scale: bool = True

    def weights(self, ins):
        return [Weight("scale", (ins[0].shape[-1],), GlorotUniform())] if self.use_scale else []


class MultiHeadAttention(_Attention):
    """Keras's MultiHeadAttention over the time axis. Inputs: query, value[, key[, attention_mask]];
    the mask (batch, query time, key time) says which keys each query may attend to (a Keras file
    that gives a mask but no key is read with the value as the key)."""

    type: Literal["MultiHeadAttention"] = "MultiHeadAttention"
    aliases = ("multi_head_attention", "mha")
    positional = ("num_heads", "key_dim")
    n_inputs = (2, 4)
    num_heads: PositiveInt
    key_dim: PositiveInt
    value_dim: PositiveInt | None = None  # None: key_dim
    use_bias: bool = True
    output_shape: PositiveInt | None = None  # None: the query's features
    attention_axes: list[int] | None = None  # None: the time axis, the only one nnspec attends over
    kernel_initializer: Initializer = GlorotUniform()
    bias_initializer: Initializer = Zeros()
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None
    activity_regularizer: Regularizer | None = None
    kernel_constraint: Constraint | None = None
    bias_constraint: Constraint | None = None
    # A query that the masks let see no key attends to every value alike (tf.keras 2, and Keras 3's
    # fused dot_product_attention) or to none (Keras 3 when it returns scores or has dropout). Not a
    # Keras key: the Keras version and the call imply it (keras_empty_rows).
    empty_rows: Literal["mean", "zero"] = "mean"
    not_in_keras_config: ClassVar[tuple[str, ...]] = ("empty_rows",)

    @field_validator("output_shape", mode="before")
    @classmethod
    def _last_axis_only(cls, v):
        if isinstance(v, (list, tuple)):
            if len(v) != 1:
                raise ValueError(f"output_shape {list(v)}: nnspec projects onto the last axis only (one size)")
            return v[0]
        return v

    @field_validator("attention_axes", mode="before")
    @classmethod
    def _time_axis_only(cls, v):
        axes = [v] if isinstance(v, int) else v
        if axes is not None and list(axes) not in ([1], [-2]):
            raise ValueError(f"attention_axes {v}: nnspec attends over the time axis only (attention_axes=[1])")
        return None if axes is None else [1]

    def keras_empty_rows(self, major: int) -> str:
        """What Keras `major` does for a query with no key (Keras 3 picks its kernel by the call)."""
        return "zero" if major == 3 and (self.return_attention_scores or self.dropout > 0) else "mean"

    def may_leave_queries_without_keys(self, ins: list[TensorType]) -> bool:
        """Whether empty_rows matters: an attention_mask or a Keras mask can hide every key from a
        query (the causal mask alone never does)."""
        return len(ins) > 3 or any(t.masked for t in ins)

    def head_sizes(self) -> tuple[int, int]:
        return self.key_dim, self.value_dim or self.key_dim

    def infer(self, ins):
        q, v, k = self._sequences(ins[:3])
        if len(ins) == 4:
            m = ins[3]
            if m.dtype not in ("bool", *INT_DTYPES, *FLOAT_DTYPES) or m.shape not in (
                    (q.shape[0], k.shape[0]), (None, k.shape[0]), (q.shape[0], None), (None, None)):
                raise ShapeError(f"MultiHeadAttention's attention_mask must be (batch, {q.shape[0]}, {k.shape[0]}), "
                                 f"got {m}")
        out = TensorType(q.dtype, (q.shape[0], self.output_shape or q.shape[1]), q.masked)
        return self._with_scores(out, (self.num_heads, q.shape[0], k.shape[0]))

    def weights(self, ins):
        (q, v), k = ins[:2], ins[2] if len(ins) > 2 else ins[1]
        kd, vd, h, out = *self.head_sizes(), self.num_heads, self.output_shape or q.shape[-1]
        projections = [("query", (q.shape[-1], h, kd), (h, kd)), ("key", (k.shape[-1], h, kd), (h, kd)),
                       ("value", (v.shape[-1], h, vd), (h, vd)), ("attention_output", (h, vd, out), (out,))]
        out = []
        for part, kernel, bias in projections:
            out.append(Weight(f"{part}/kernel", kernel, self.kernel_initializer, True, self.kernel_regularizer,
                              self.kernel_constraint))
            if self.use_bias:
                out.append(Weight(f"{part}/bias", bias, self.bias_initializer, True, self.bias_regularizer,
                                  self.bias_constraint))
        return out


LAYER_CLASSES: list[type[Layer]] = [
    Dense, ActivationLayer, Dropout, Flatten, Reshape, Permute, RepeatVector, ActivityRegularization, Masking,
    Lambda, Embedding, Conv1D, Conv2D, Conv3D, Conv1DTranspose, Conv2DTranspose, Conv3DTranspose,
    DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
    ZeroPadding1D, ZeroPadding2D, ZeroPadding3D, Cropping1D, Cropping2D, Cropping3D, UpSampling1D, UpSampling2D,
    UpSampling3D, Resizing, CenterCrop, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D, BatchNormalization,
    LayerNormalization, SimpleRNN, GRU, LSTM, Bidirectional, TimeDistributed, Add, Subtract, Multiply, Average,
    Maximum, Minimum, Concatenate,
    SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, GaussianNoise, GaussianDropout, AlphaDropout,
    StochasticDepth, NotEqual, Cast, Rescaling, Normalization, UnitNormalization, LayerScale, GroupNormalization, Dot,
    Attention, AdditiveAttention, MultiHeadAttention,
]
LAYERS = Family("layer", LAYER_CLASSES, key="type")
AnyLayer = LAYERS.type
