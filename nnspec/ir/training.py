"""The training section: losses, metrics, optimizers, schedules, callbacks, data sources."""

from typing import ClassVar, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator,
)

from .base import Family, Fn

# ---- losses ---------------------------------------------------------------------


class _Loss(Fn):
    """`kind` tells which outputs a loss fits: probabilities of classes, binary, or any regression."""

    kind: ClassVar[str] = "regression"


class MeanSquaredError(_Loss):
    name: Literal["mean_squared_error"] = "mean_squared_error"
    aliases = ("mse", "MSE")


class MeanAbsoluteError(_Loss):
    name: Literal["mean_absolute_error"] = "mean_absolute_error"
    aliases = ("mae", "MAE")


class MeanAbsolutePercentageError(_Loss):
    name: Literal["mean_absolute_percentage_error"] = "mean_absolute_percentage_error"
    aliases = ("mape", "MAPE")


class MeanSquaredLogarithmicError(_Loss):
    name: Literal["mean_squared_logarithmic_error"] = "mean_squared_logarithmic_error"
    aliases = ("msle", "MSLE")


class Huber(_Loss):
    name: Literal["huber"] = "huber"
    aliases = ("huber_loss",)
    positional = ("delta",)
    delta: PositiveFloat = 1.0


class LogCosh(_Loss):
    name: Literal["log_cosh"] = "log_cosh"
    aliases = ("logcosh",)


class Hinge(_Loss):
    name: Literal["hinge"] = "hinge"
    kind = "binary"


class SquaredHinge(_Loss):
    name: Literal["squared_hinge"] = "squared_hinge"
    kind = "binary"


class CategoricalHinge(_Loss):
    name: Literal["categorical_hinge"] = "categorical_hinge"
    kind = "categorical"


class BinaryCrossentropy(_Loss):
    name: Literal["binary_crossentropy"] = "binary_crossentropy"
    aliases = ("bce",)
    kind = "binary"
    from_logits: bool = False
    label_smoothing: float = Field(0.0, ge=0.0, le=1.0)


class CategoricalCrossentropy(_Loss):
    name: Literal["categorical_crossentropy"] = "categorical_crossentropy"
    aliases = ("cce",)
    kind = "categorical"
    from_logits: bool = False
    label_smoothing: float = Field(0.0, ge=0.0, le=1.0)
    axis: int = -1


class SparseCategoricalCrossentropy(_Loss):
    name: Literal["sparse_categorical_crossentropy"] = "sparse_categorical_crossentropy"
    aliases = ("scce",)
    kind = "categorical"
    from_logits: bool = False


class KLDivergence(_Loss):
    name: Literal["kl_divergence"] = "kl_divergence"
    aliases = ("kld", "KLD", "kullback_leibler_divergence")


class Poisson(_Loss):
    name: Literal["poisson"] = "poisson"


class CosineSimilarity(_Loss):
    name: Literal["cosine_similarity"] = "cosine_similarity"
    aliases = ("cosine_proximity",)
    axis: int = -1


LOSSES = Family(
    "loss",
    [MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber, LogCosh,
     Hinge, SquaredHinge, CategoricalHinge, BinaryCrossentropy, CategoricalCrossentropy,
     SparseCategoricalCrossentropy, KLDivergence, Poisson, CosineSimilarity],
)
Loss = LOSSES.type

# ---- metrics --------------------------------------------------------------------


class Accuracy(Fn):
    """Keras's 'accuracy' string: resolved to binary/categorical/sparse accuracy from the loss."""

    name: Literal["accuracy"] = "accuracy"
    aliases = ("acc",)


class BinaryAccuracy(Fn):
    name: Literal["binary_accuracy"] = "binary_accuracy"
    threshold: float = 0.5


class CategoricalAccuracy(Fn):
    name: Literal["categorical_accuracy"] = "categorical_accuracy"


class SparseCategoricalAccuracy(Fn):
    name: Literal["sparse_categorical_accuracy"] = "sparse_categorical_accuracy"


class TopK(Fn):
    name: Literal["top_k_categorical_accuracy"] = "top_k_categorical_accuracy"
    aliases = ("top_k",)
    positional = ("k",)
    k: PositiveInt = 5


class SparseTopK(Fn):
    name: Literal["sparse_top_k_categorical_accuracy"] = "sparse_top_k_categorical_accuracy"
    aliases = ("sparse_top_k",)
    positional = ("k",)
    k: PositiveInt = 5


class Precision(Fn):
    name: Literal["precision"] = "precision"
    positional = ("thresholds",)
    thresholds: float = Field(0.5, ge=0.0, le=1.0)


class Recall(Fn):
    name: Literal["recall"] = "recall"
    positional = ("thresholds",)
    thresholds: float = Field(0.5, ge=0.0, le=1.0)


class AUC(Fn):
    name: Literal["auc"] = "auc"
    aliases = ("AUC",)
    num_thresholds: int = Field(200, gt=1)
    curve: Literal["ROC", "PR"] = "ROC"


class MSEMetric(Fn):
    name: Literal["mse"] = "mse"
    aliases = ("mean_squared_error",)


class MAEMetric(Fn):
    name: Literal["mae"] = "mae"
    aliases = ("mean_absolute_error",)


class RMSE(Fn):
    name: Literal["rmse"] = "rmse"
    aliases = ("root_mean_squared_error",)


class MAPEMetric(Fn):
    name: Literal["mape"] = "mape"
    aliases = ("mean_absolute_percentage_error",)


class MSLEMetric(Fn):
    name: Literal["msle"] = "msle"
    aliases = ("mean_squared_logarithmic_error",)


METRICS = Family(
    "metric",
    [Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopK, SparseTopK, Precision, Recall,
     AUC, MSEMetric, MAEMetric, RMSE, MAPEMetric, MSLEMetric],
)
Metric = METRICS.type

# ---- learning-rate schedules -----------------------------------------------------


class ExponentialDecay(Fn):
    name: Literal["exponential_decay"] = "exponential_decay"
    positional = ("initial_learning_rate", "decay_steps", "decay_rate")
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    decay_rate: PositiveFloat
    staircase: bool = False


class PiecewiseConstantDecay(Fn):
    name: Literal["piecewise_constant_decay"] = "piecewise_constant_decay"
    aliases = ("piecewise", "step_decay", "step")
    positional = ("boundaries", "values")
    boundaries: list[int]
    values: list[float]

    def model_post_init(self, _):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError("piecewise_constant_decay needs one more value than boundaries")
        if self.boundaries != sorted(self.boundaries):
            raise ValueError("piecewise_constant_decay boundaries must increase")


class CosineDecay(Fn):
    name: Literal["cosine_decay"] = "cosine_decay"
    positional = ("initial_learning_rate", "decay_steps")
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    alpha: float = Field(0.0, ge=0.0, le=1.0)


class InverseTimeDecay(Fn):
    name: Literal["inverse_time_decay"] = "inverse_time_decay"
    positional = ("initial_learning_rate", "decay_steps", "decay_rate")
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    decay_rate: NonNegativeFloat
    staircase: bool = False


SCHEDULES = Family("learning-rate schedule",
                   [ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay])
Schedule = SCHEDULES.type
LearningRate = PositiveFloat | Schedule

# ---- optimizers -----------------------------------------------------------------


class _Optimizer(Fn):
    positional = ("learning_rate",)
    learning_rate: LearningRate = 0.001
    clipnorm: PositiveFloat | None = None
    clipvalue: PositiveFloat | None = None
    global_clipnorm: PositiveFloat | None = None
    decay: NonNegativeFloat = 0.0  # Keras 2: lr / (1 + decay * iterations)

    @field_validator("epsilon", mode="before", check_fields=False)
    @classmethod
    def _default_epsilon(cls, value, info):
        """Keras 2's `Adam(epsilon=None)` meant its default, K.epsilon() (1e-7)."""
        return cls.model_fields[info.field_name].default if value is None else value


class SGD(_Optimizer):
    name: Literal["sgd"] = "sgd"
    learning_rate: LearningRate = 0.01
    momentum: float = Field(0.0, ge=0.0, le=1.0)
    nesterov: bool = False


class RMSprop(_Optimizer):
    name: Literal["rmsprop"] = "rmsprop"
    aliases = ("RMSprop",)
    rho: float = Field(0.9, ge=0.0, lt=1.0)
    momentum: float = Field(0.0, ge=0.0, le=1.0)
    epsilon: PositiveFloat = 1e-7
    centered: bool = False


class Adagrad(_Optimizer):
    name: Literal["adagrad"] = "adagrad"
    initial_accumulator_value: NonNegativeFloat = 0.1
    epsilon: PositiveFloat = 1e-7


class Adadelta(_Optimizer):
    name: Literal["adadelta"] = "adadelta"
    rho: float = Field(0.95, ge=0.0, lt=1.0)
    epsilon: PositiveFloat = 1e-7


class _AdamFamily(_Optimizer):
    beta_1: float = Field(0.9, ge=0.0, lt=1.0)
    beta_2: float = Field(0.999, ge=0.0, lt=1.0)
    epsilon: PositiveFloat = 1e-7


class Adam(_AdamFamily):
    name: Literal["adam"] = "adam"
    amsgrad: bool = False


class Adamax(_AdamFamily):
    name: Literal["adamax"] = "adamax"


class Nadam(_AdamFamily):
    name: Literal["nadam"] = "nadam"


class AdamW(_AdamFamily):
    name: Literal["adamw"] = "adamw"
    aliases = ("AdamW",)
    weight_decay: NonNegativeFloat = 0.004
    amsgrad: bool = False


OPTIMIZERS = Family("optimizer", [SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam, AdamW])
Optimizer = OPTIMIZERS.type

# ---- callbacks ------------------------------------------------------------------

Mode = Literal["auto", "min", "max"]


class EarlyStopping(Fn):
    name: Literal["early_stopping"] = "early_stopping"
    monitor: str = "val_loss"
    min_delta: NonNegativeFloat = 0.0
    patience: NonNegativeInt = 0
    mode: Mode = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: NonNegativeInt = 0


class ModelCheckpoint(Fn):
    name: Literal["model_checkpoint"] = "model_checkpoint"
    positional = ("filepath",)
    filepath: str
    monitor: str = "val_loss"
    save_best_only: bool = False
    save_weights_only: bool = False
    mode: Mode = "auto"


class ReduceLROnPlateau(Fn):
    name: Literal["reduce_lr_on_plateau"] = "reduce_lr_on_plateau"
    aliases = ("ReduceLROnPlateau",)
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: NonNegativeInt = 10
    min_delta: NonNegativeFloat = 1e-4
    cooldown: NonNegativeInt = 0
    min_lr: NonNegativeFloat = 0.0
    mode: Mode = "auto"


class LearningRateScheduler(Fn):
    name: Literal["learning_rate_scheduler"] = "learning_rate_scheduler"
    positional = ("schedule",)
    schedule: Schedule  # per epoch: decay_steps count epochs here


class CSVLogger(Fn):
    name: Literal["csv_logger"] = "csv_logger"
    aliases = ("CSVLogger",)
    positional = ("filename",)
    filename: str
    separator: str = ","
    append: bool = False


class TensorBoard(Fn):
    name: Literal["tensorboard"] = "tensorboard"
    aliases = ("TensorBoard",)
    positional = ("log_dir",)
    log_dir: str = "logs"
    histogram_freq: NonNegativeInt = 0
    write_graph: bool = True
    write_images: bool = False  # with histogram_freq, as in Keras


class TerminateOnNaN(Fn):
    name: Literal["terminate_on_nan"] = "terminate_on_nan"
    aliases = ("TerminateOnNaN",)


class HistoryCallback(Fn):
    name: Literal["history"] = "history"


CALLBACKS = Family(
    "callback",
    [EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, LearningRateScheduler, CSVLogger, TensorBoard,
     TerminateOnNaN, HistoryCallback],
)
Callback = CALLBACKS.type

# ---- data sources ---------------------------------------------------------------
# Every source yields samples in batches (nnspec.data); the preprocessing fields are shared.

Floats = float | list[float]


class _Source(Fn):
    """Preprocessing every source takes: x * rescale, then (x - mean) / std (per channel when lists),
    then each sample reshaped (`reshape=[784]`; one -1 takes what is left, so `[-1]` flattens);
    labels as one-hot rows (true), class indices (false) or, by default, whatever the loss wants;
    `positive`: binary labels, 1 where the class is this one (an index or a class name), else 0;
    `sample_weight`: Keras's per-sample loss weights, from the source's array (npz), file (npy) or column (csv)."""

    rescale: float | None = None
    mean: Floats | None = None
    std: Floats | None = None
    reshape: list[int] | None = None
    one_hot: bool | None = None
    positive: int | str | None = None
    sample_weight: str | None = None

    @field_validator("reshape")
    @classmethod
    def _one_free_dimension(cls, shape):
        if shape is not None and (shape.count(-1) > 1 or any(d == 0 or d < -1 for d in shape)):
            raise ValueError(f"reshape takes positive sizes and at most one -1, got {shape}")
        return shape


class NpzData(_Source):
    """Arrays `x` (or x0, x1, ...) and `y` (or y0, y1, ...) in one .npz file; an uncompressed .npz
    (np.savez) is memory-mapped, a compressed one (np.savez_compressed) is read into memory."""

    name: Literal["npz"] = "npz"
    positional = ("path",)
    path: str


class NpyData(_Source):
    """Two .npy files, memory-mapped: data larger than memory trains."""

    name: Literal["npy"] = "npy"
    positional = ("x", "y")
    x: str
    y: str | None = None


class CsvData(_Source):
    """A CSV file with a header; `labels` names the label column(s), `features` the inputs (default:
    every other column). A text label column becomes class indices, its names saved with the model."""

    name: Literal["csv"] = "csv"
    positional = ("path",)
    path: str
    features: list[str] | None = None  # None: every column but the labels
    labels: str | list[str]


class Hdf5Data(_Source):
    """Datasets of an HDF5 file by path, read batch by batch (never loaded whole)."""

    name: Literal["hdf5"] = "hdf5"
    aliases = ("h5",)
    positional = ("path", "x", "y")
    path: str
    x: str | list[str] = "x"
    y: str | list[str] | None = "y"


class ImageFolderData(_Source):
    """Keras's folder layout: path/train, path/valid, path/test, each with a folder per class
    (path/sample/... with sample=true). Images are decoded with Pillow and resized to `size`
    (default: the model's input)."""

    name: Literal["images"] = "images"
    aliases = ("image_folder", "flow_from_directory", "image_dataset_from_directory")
    positional = ("path",)
    path: str
    subset: Literal["train", "valid", "test"] = "train"
    sample: bool = False
    size: tuple[PositiveInt, PositiveInt] | None = None  # (height, width)
    color_mode: Literal["grayscale", "rgb", "rgba"] | None = None  # default: from the model's channels
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bilinear"
    classes: list[str] | None = None  # default: every sub-folder, sorted
    skip_bad: bool = False  # skip unreadable images (counted) instead of stopping


class _StandardSet(_Source):
    """A standard image set in a folder: images scaled by 1/normalize; samples start..stop of the subset."""

    positional = ("path",)
    path: str
    normalize: PositiveFloat = 255.0
    start: NonNegativeInt = 0
    stop: PositiveInt | None = None


class MnistData(_StandardSet):
    """MNIST IDX files (raw or .gz) in a folder; labels shaped for the loss."""

    name: Literal["mnist"] = "mnist"
    subset: Literal["train", "t10k"] = "t10k"


class Cifar10Data(_StandardSet):
    """CIFAR-10's binary distribution (the cifar-10-batches-bin folder, or the folder holding it):
    32x32 RGB images, channels last; subset train (data_batch_1..5.bin) or test (test_batch.bin);
    class names from batches.meta.txt."""

    name: Literal["cifar10"] = "cifar10"
    aliases = ("cifar_10",)
    subset: Literal["train", "test"] = "train"


class XorData(_Source):
    """The XOR truth table (4 samples), repeated `repeat` times, with Gaussian `noise` on the inputs."""

    name: Literal["xor"] = "xor"
    repeat: PositiveInt = 1
    noise: NonNegativeFloat = 0.0
    seed: int = 0


class CirclesData(_Source):
    """Two rings (scikit-learn's make_circles): radius 1 (class 0) and `factor` (class 1)."""

    name: Literal["circles"] = "circles"
    positional = ("samples",)
    samples: PositiveInt = 1000
    noise: NonNegativeFloat = 0.05
    factor: float = Field(0.5, gt=0.0, lt=1.0)
    seed: int = 0


class CosineData(_Source):
    """Windows of cos(step * t) (x: window values, shape (window, 1)) and the value after each (y)."""

    name: Literal["cosine"] = "cosine"
    positional = ("window",)
    window: PositiveInt = 50
    samples: PositiveInt = 1000
    step: PositiveFloat = 0.1


class DigitsData(_Source):
    """scikit-learn's 8x8 digits (1,797 images, values 0..16 scaled by 1/normalize); needs the
    `datasets` extra: pip install 'nnspec[datasets]'."""

    name: Literal["digits"] = "digits"
    normalize: PositiveFloat = 16.0


DATA_SOURCES = Family("data source", [NpzData, NpyData, CsvData, Hdf5Data, ImageFolderData, MnistData, Cifar10Data,
                                      XorData, CirclesData, CosineData, DigitsData])
DataSource = DATA_SOURCES.type

# ---- augmentation -----------------------------------------------------------------

FillMode = Literal["nearest", "constant", "reflect", "wrap"]


class ImageAugmentation(Fn):
    """Keras's ImageDataGenerator transforms, drawn per image and applied to training batches only:
    rotation in degrees, shifts as fractions of the size (< 1) or pixels, shear in degrees, zoom
    as [1 - z, 1 + z] or [lo, hi], a channel shift (one intensity in [-c, c] per image added to every
    channel, clipped to the image's range), flips; points mapped from outside the image follow fill_mode."""

    name: Literal["image_data_generator"] = "image_data_generator"
    aliases = ("ImageDataGenerator", "augment", "image_augmentation")
    rotation_range: NonNegativeFloat = 0.0
    width_shift_range: NonNegativeFloat = 0.0
    height_shift_range: NonNegativeFloat = 0.0
    shear_range: NonNegativeFloat = 0.0
    zoom_range: NonNegativeFloat | tuple[PositiveFloat, PositiveFloat] = 0.0
    channel_shift_range: NonNegativeFloat = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: FillMode = "nearest"
    cval: float = 0.0
    seed: int | None = None  # default: the training seed


AUGMENTATIONS = Family("augmentation", [ImageAugmentation])
Augmentation = AUGMENTATIONS.type


class TrainConfig(BaseModel):
    """What Keras's `compile` and `fit` take, with Keras's defaults."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    loss: Loss | list[Loss] | None = None
    metrics: list[Metric] = []
    optimizer: Optimizer = RMSprop()
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 1
    initial_epoch: NonNegativeInt = 0
    steps_per_epoch: PositiveInt | None = None
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    validation_data: DataSource | None = None
    validation_steps: PositiveInt | None = None  # validation batches per epoch (default: all)
    shuffle: bool = True
    class_weight: dict[int, NonNegativeFloat] | None = None
    callbacks: list[Callback] = []
    data: DataSource | None = None
    augment: Augmentation | None = None
    seed: int | None = None
    verbose: Literal[0, 1, 2] = 1
