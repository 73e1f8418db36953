"""The `nnspec` command. Exit codes: 0 success, 1 `fmt --check` found changes or an internal error (see
failures.py), 2 bad input, 130 interrupted."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from . import __version__
from .errors import SpecError

EXIT_OK, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for any bad input
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .distributed.cluster import add_arguments as ray_arguments

    parser = _Parser(prog="nnspec", description="Describe a neural network once: check, summarize, format, "
                     "compile to ONNX, train, convert.")
    parser.add_argument("--version", action="version", version=f"nnspec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("check", help="validate specs (exit 0 when all are valid, 2 otherwise)")
    p.add_argument("files", nargs="+", metavar="FILE", help="a spec or a model in any format convert reads")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")

    p = sub.add_parser("summary", help="print the Keras-style summary table of a spec, Keras file or ONNX model")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("fmt", help="format specs canonically: .nn (comments kept), JSON and YAML (keys in order)")
    p.add_argument("files", nargs="+", metavar="FILE")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted; change nothing")
    mode.add_argument("--write", "-w", action="store_true", help="rewrite the files in place")

    sub.add_parser("schema", help="print the JSON Schema of JSON/YAML specs")

    sub.add_parser("reference", help="print the language reference (every layer, argument and default) as Markdown")

    p = sub.add_parser("resolve", help="print a spec as JSON with every default filled in")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("compile", help="compile a spec and its weights to an ONNX model")
    p.add_argument("file", metavar="SPEC", help=".nn, .json or .yaml spec")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.onnx")
    _weight_options(p)
    p.add_argument("--opset", type=_opset, metavar="N", help="ONNX opset, 17 to 26 (default: 18)")

    p = sub.add_parser("convert", help="convert between Keras files, specs and ONNX models (by extension)")
    p.add_argument("input", metavar="IN", help=".h5, .keras, .json/.yaml (Keras or spec), .nn or .onnx")
    p.add_argument("output", metavar="OUT", nargs="?", help=".onnx, .nn (weights beside it in .npz), .h5 (Keras 2), "
                   ".keras (Keras 3), or .json/.yaml (Keras's to_json: the architecture alone)")
    p.add_argument("-o", "--output", dest="output_option", metavar="OUT", help="the same as OUT")
    p.add_argument("--keras", type=int, choices=(2, 3), help="Keras version of a .json/.yaml OUT (default: 3)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", metavar="W", help="IN's weights: Keras .h5 for a Keras .json, .npz for a spec")
    group.add_argument("--seed", type=int, metavar="N", help="seed for fresh weights where IN has none")
    p.add_argument("--opset", type=_opset, metavar="N", help="ONNX opset of an .onnx OUT, 17 to 26 (default: 18)")

    p = sub.add_parser("predict", help="run a model on inputs from a .npy, .npz or .csv file")
    p.add_argument("model", metavar="MODEL", help="a spec (.nn, .json, .yaml), Keras file (.h5, .keras, .json) or "
                   ".onnx model")
    p.add_argument("-i", "--input", required=True, metavar="FILE",
                   help=".npy; .npz with x (or x0, x1, ... or the input names); .csv of numbers, header optional")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="write every prediction (.npy, or .npz for several "
                   "outputs); without it a table of the first rows is printed")
    p.add_argument("--classes", action="store_true", help="class indices instead of probabilities (Keras's "
                   "predict_classes: argmax, or > 0.5 for one unit), with names where the model knows them")
    p.add_argument("--layer", action="append", metavar="NAME", help="the output of this layer instead of the "
                   "model's (feature extraction, as keras.Model(model.input, layer.output)); repeat for several")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when it works, else CPU (default)")
    p.add_argument("--show", type=int, metavar="N", help="also draw the first N inputs as images with their "
                   "predicted labels (and the true ones when the input has y) into a picture")
    p.add_argument("--show-file", metavar="OUT.png", default="predictions.png",
                   help="where --show draws (default: predictions.png; .svg and .pdf work too)")
    ray_arguments(p, "-i is a folder of .npy, .npz, Parquet or image files predicted as a Ray Dataset by a pool "
                  "of actors; -o a folder of parts")
    p.add_argument("--workers", type=int, metavar="K", help="with --backend ray: actors in the pool (default: one "
                   "per GPU, else per CPU, at most one per part)")
    _weight_options(p)

    p = sub.add_parser("plot", help="draw a training history (history.json) or a model's network (any format)")
    p.add_argument("file", metavar="FILE", help="a history JSON that nnspec train wrote, or a model in any format "
                   "convert reads")
    p.add_argument("-o", "--output", metavar="OUT.png", help="picture to write (.png, .svg or .pdf), or .dot for "
                   "Graphviz (default: FILE's name with .png, in the current folder)")

    p = sub.add_parser("train", help="train a model the way Keras fit would")
    p.add_argument("model", metavar="MODEL", help=".nn, .json or .yaml spec; a Keras .h5/.keras/.json file or an .onnx "
                   "model goes on from its weights")
    p.add_argument("--data", metavar="DATA", help=".npz with x/y (or x0.., y0..), .npy, .csv (last column: "
                   "labels), .h5, an MNIST IDX or image folder, a built-in set (xor, circles, digits) or a source "
                   "such as 'csv(\"iris.csv\", labels=species)' (default: the spec's data)")
    p.add_argument("--validation-data", metavar="DATA")
    p.add_argument("--validation-split", type=float, metavar="F")
    p.add_argument("--loss", metavar="LOSS", help="e.g. mse or 'categorical_crossentropy(label_smoothing=0.1)'")
    p.add_argument("--optimizer", metavar="OPT", help="e.g. 'adam(learning_rate=0.01)'")
    p.add_argument("--metrics", metavar="M,...", help="e.g. accuracy,auc")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--initial-epoch", type=int, metavar="N")
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="0 silent, 1 progress bar, 2 one line per epoch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("-o", "--output", metavar="OUT.onnx", help="trained model (default: MODEL's name + "
                   ".trained.onnx, in the current folder); its weights go beside it as .npz")
    p.add_argument("--history", metavar="FILE.json", help="default: beside the output, .history.json")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="checkpoint after every epoch (default: beside the output)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint folder after a finished run")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of stopping")
    p.add_argument("--no-plot", action="store_true", help="do not draw the history picture beside the history JSON")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="data-parallel replicas, each on its shard "
                   "of every batch, gradients averaged through MPI (the [ray] extra; default: 1)")
    ray_arguments(p, "the --workers replicas are Ray actors in a Ray cluster")
    _weight_options(p)

    p = sub.add_parser("tune", help="search a spec's hyperparameters with Optuna (the [tune] extra)")
    from .tune.command import add_arguments as tune_arguments

    tune_arguments(p)

    p = sub.add_parser("evaluate", help="loss and metrics of a model on data")
    p.add_argument("model", metavar="MODEL", help=".nn, .json or .yaml spec (with --weights), or a Keras "
                   ".h5/.keras file or an .onnx model, which bring their weights")
    p.add_argument("--data", metavar="DATA", help="default: the spec's data")
    p.add_argument("--weights", metavar="W.npz", help="trained weights for a spec (nnspec train writes them)")
    p.add_argument("--loss", metavar="LOSS", help="where the model's file has none (default: its train section)")
    p.add_argument("--metrics", metavar="M,...")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def _opset(text: str) -> int:
    from .backends.onnx.emit import MAX_OPSET, MIN_OPSET

    if not text.isdigit() or not MIN_OPSET <= int(text) <= MAX_OPSET:
        raise argparse.ArgumentTypeError(f"choose an opset from {MIN_OPSET} to {MAX_OPSET}, not {text!r}")
    return int(text)


def _weight_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", metavar="W.npz", help="nnspec weights file (default: fresh from the initializers)")
    group.add_argument("--seed", type=int, metavar="N", help="seed for fresh weights")


@command("check")
def _check(args) -> int:
    from .convert import read

    status = EXIT_OK
    for path in args.files:
        try:
            model = read(path, fresh=False)
        except SpecError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        if not args.quiet:
            space = f" at the defaults; {model.space.headline()}" if model.space is not None else ""
            print(f"{path}: ok ({model.analysis.total:,} parameters{space})")
    return status


@command("summary")
def _summary(args) -> int:
    from .convert import read
    from .summary import summary

    model = read(args.file, fresh=False)
    print(summary(model.analysis))
    if model.space is not None:
        print(model.space.table())
    return EXIT_OK


@command("fmt")
def _fmt(args) -> int:
    from .formatter import format_file_text
    from .loader import read_text
    from .atomic import write_text

    status = EXIT_OK
    for path in args.files:
        text = read_text(path)
        formatted = format_file_text(text, path)
        if args.check:
            if formatted != text:
                print(f"{path}: would reformat", file=sys.stderr)
                status = EXIT_CHANGED
        elif args.write:
            if formatted != text:
                write_text(path, formatted)
        else:
            sys.stdout.write(formatted)
    return status


@command("schema")
def _schema(args) -> int:
    from .ir.schema import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return EXIT_OK


@command("reference")
def _reference(args) -> int:
    from .reference import reference_markdown

    sys.stdout.write(reference_markdown())
    return EXIT_OK


@command("resolve")
def _resolve(args) -> int:
    from .loader import dump_json, load

    print(dump_json(load(args.file).model))
    return EXIT_OK


def _train_overrides(args) -> dict:
    from .frontend import parse_value

    metrics = parse_value(f"[{args.metrics}]", "--metrics") if args.metrics else None
    return {
        "loss": parse_value(args.loss, "--loss") if args.loss else None,
        "optimizer": parse_value(args.optimizer, "--optimizer") if args.optimizer else None,
        "metrics": metrics, "batch_size": args.batch_size, "epochs": args.epochs,
        "initial_epoch": args.initial_epoch, "validation_split": args.validation_split,
        "shuffle": False if args.no_shuffle else None, "seed": args.seed, "verbose": args.verbose,
    }


@command("train")
def _train(args) -> int:
    from pathlib import Path

    from . import engine
    from .train.run import save_results
    from .weights import load_weights

    replicas = getattr(args, "replicas", None)  # set in each replica of a --workers run
    if replicas is None:
        problem = _distributed_flags(args)
        if problem:
            return _fail(problem)
        if args.workers > 1:
            from .distributed.training import launch

            return launch(args)

    model = engine.open_model(args.model)
    for note in model.notes:
        print(f"nnspec: note: {note}", file=sys.stderr)
    config = engine.configure(model.spec, _train_overrides(args))
    data, validation = engine.read_data(model.spec, config, args.data, args.validation_data, skip_bad=args.skip_bad)
    if config.verbose:
        for note in data.notes + (validation.notes if validation is not None else []):
            print(note)
    output = Path(args.output or Path(args.model).stem + ".trained.onnx")
    history = Path(args.history or output.with_suffix(".history.json"))
    checkpoints = Path(args.checkpoint_dir or output.with_suffix(".checkpoint"))
    weights = load_weights(args.weights, model.spec.analysis) if args.weights else None
    try:
        run = engine.fit(model, config, data, validation, weights=weights, device=args.device,
                         fresh_optimizer=bool(args.weights or args.optimizer), checkpoint_dir=checkpoints,
                         resume=args.resume, replicas=replicas)
    except KeyboardInterrupt:
        from .train.checkpoint import FILENAME

        if (checkpoints / FILENAME).exists():
            print(f"nnspec: interrupted; to go on from the last finished epoch: {_resume_command(args)}",
                  file=sys.stderr)
        else:
            print("nnspec: interrupted before the first epoch finished (nothing to resume)", file=sys.stderr)
        return 130
    if replicas is not None and replicas.rank:  # replica 0 writes what the run leaves behind
        return EXIT_OK
    written = save_results(model.spec, run, output, history, plot=not args.no_plot)
    if not args.keep_checkpoint:
        import shutil

        shutil.rmtree(checkpoints, ignore_errors=True)
    if config.verbose:
        print(f"wrote {', '.join(str(p) for p in written)}")
    return EXIT_OK


def _distributed_flags(args) -> str | None:
    from .distributed.cluster import check_address

    check_address(args, "nnspec train")
    if args.workers < 1:
        return f"--workers takes a positive number, not {args.workers}"
    if args.backend == "ray" and args.workers == 1:
        return "--backend ray runs --workers replicas: give --workers 2 or more"
    return None


def _resume_command(args) -> str:
    """The `nnspec train` command that continues an interrupted run: its own flags, with --resume."""
    import shlex

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = commands.choices["train"]
    words = ["nnspec", "train"]
    for action in train._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words.append(value)
        elif value is not None and value is not False and value != action.default and action.dest != "resume":
            words += [action.option_strings[-1]] if value is True else [action.option_strings[-1], str(value)]
    return shlex.join(words + ["--resume"])


@command("tune")
def _tune(args) -> int:
    from .tune.command import tune

    return tune(args)


@command("evaluate")
def _evaluate(args) -> int:
    from pathlib import Path

    from . import engine
    from .frontend import parse_value
    from .train.progress import format_logs
    from .train.run import read_classes
    from .weights import load_weights

    model = engine.open_model(args.model)
    weights = load_weights(args.weights, model.spec.analysis) if args.weights else engine.trained_weights(model)
    config = engine.configure(model.spec, {
        "batch_size": args.batch_size, "loss": parse_value(args.loss, "--loss") if args.loss else None,
        "metrics": parse_value(f"[{args.metrics}]", "--metrics") if args.metrics else None})
    data = engine.evaluation_data(model.spec, config, args.data, classes=read_classes(Path(args.weights or args.model)))
    print(format_logs(engine.evaluate(model, config, data, weights, device=args.device)))
    return EXIT_OK


@command("plot")
def _plot(args) -> int:
    from pathlib import Path

    from .plots import is_history, plot_history, plot_model, read_history

    path = Path(args.file)
    output = Path(args.output or Path(path.name).with_suffix(".png"))  # -o, else the current folder
    if output.resolve() == path.resolve():
        return _fail(f"{path}: give another -o OUT.png")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            text = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _fail(f"{path}: no such file")
        except (OSError, ValueError) as exc:
            return _fail(f"{path}: not JSON ({exc})")
        if is_history(text):
            plot_history(read_history(path), output, title=path.name.split(".")[0])
            print(f"wrote {output}")
            return EXIT_OK
    from .convert import read

    plot_model(read(str(path), fresh=False).analysis, output)
    print(f"wrote {output}")
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"nnspec: error: {message}", file=sys.stderr)
    return EXIT_USAGE


@command("compile")
def _compile(args) -> int:
    from pathlib import Path

    from .loader import SPEC_SUFFIXES

    if Path(args.file).suffix.lower() not in SPEC_SUFFIXES:
        return _fail(f"{args.file}: compile takes a spec ({', '.join(SPEC_SUFFIXES)})")
    from .api import load
    from .backends.onnx import DEFAULT_OPSET

    model = load(args.file, weights=args.weights, seed=args.seed, opset=args.opset or DEFAULT_OPSET)
    try:
        model.save_onnx(args.output)
    except OSError as exc:
        return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    print(f"{args.output}: {len(model.onnx.graph.node)} nodes, {model.spec.analysis.total:,} parameters, "
          f"opset {model.onnx.opset_import[0].version}")
    return EXIT_OK


@command("convert")
def _convert(args) -> int:
    from .convert import convert

    if (args.output is None) == (args.output_option is None):
        return _fail("give the output once: nnspec convert IN OUT, or nnspec convert IN -o OUT")
    written, notes = convert(args.input, args.output or args.output_option, weights=args.weights, seed=args.seed,
                             opset=args.opset, keras=args.keras)
    for note in notes:
        print(f"nnspec: note: {note}", file=sys.stderr)
    print(f"wrote {', '.join(written)}")
    return EXIT_OK


@command("predict")
def _predict(args) -> int:
    from pathlib import Path

    from .api import InputError
    from .backends.onnx.runtime import DeviceError
    from .arrays import check_output, read_inputs
    from .convert import model_kind

    if Path(args.model).suffix.lower() == ".onnx" and (args.weights or args.seed is not None):
        return _fail("--weights and --seed apply to specs; an ONNX model carries its weights")
    if args.backend == "ray" or args.address or args.workers is not None:
        from .distributed.predict import run

        return run(args, _predict_model)
    if args.show is not None and args.show < 1:
        return _fail(f"--show takes a positive number of images, not {args.show}")
    true = classes = None
    try:
        model = _predict_model(args)
        if args.output:
            check_output(args.output, len(model.output_names))
        classes = _model_classes(model, args.model, args.weights)
        if _is_data_source(args.input):
            inputs, true, classes = _source_inputs(args.input, model, classes)
        else:
            inputs = read_inputs(args.input, model.inputs)
            true = _npz_targets(args.input) if args.show else None
        outputs = model.predict(inputs, batch_size=args.batch_size)
    except (InputError, DeviceError) as exc:
        return _fail(str(exc))
    if model_kind(args.model) == "spec" and args.weights is None and _drawn_weights(model):  # once predictions stand
        drawn = f"seed {args.seed}" if args.seed is not None else "a new draw each run"
        print(f"nnspec: note: {args.model} has no trained weights: predicting with random weights from its "
              f"initializers ({drawn}); give --weights", file=sys.stderr)
    outputs = dict(zip(model.output_names, outputs if isinstance(outputs, list) else [outputs]))
    if args.show:
        from .plots import plot_predictions

        n = min(args.show, len(inputs[0]))
        first = next(iter(outputs.values()))
        plot_predictions(inputs[0][:n], first[:n], args.show_file, None if true is None else true[:n], classes)
        print(f"wrote {args.show_file} ({n} images)")
    if args.output:
        return _write_predictions(args.output, outputs, args.classes, classes)
    if args.show:
        return EXIT_OK
    from .predictions import class_indices, is_classifier, probability_outputs, table

    probabilities = probability_outputs(model.onnx)
    for name, y in outputs.items():
        classifier = (args.classes and y.ndim == 2) or is_classifier(y, name in probabilities, classes)
        shown = class_indices(y) if args.classes and not classifier else y
        heading = f"{name}:\n" if len(outputs) > 1 else ""
        print(heading + table(shown, classifier, classes, with_probability=not args.classes))
    return EXIT_OK


def _features(source, layers: list[str]):
    """The spec of `source` cut to give the outputs of `layers` (predict --layer)."""
    from .errors import SpecError
    from .ir.model import analyze, truncated
    from .loader import Spec, dump_json

    try:
        model = truncated(source.model, layers)
    except ValueError as exc:
        raise SpecError(f"--layer: {exc}", source.path) from None
    return Spec(model, analyze(model)[0], source.path, dump_json(model), None)


def _write_predictions(path: str, outputs: dict, classes_only: bool, classes: list[str] | None) -> int:
    """Every prediction to .npy or .npz; with --classes the class indices (and in an .npz the names,
    as OUTPUT_names, where the model knows them)."""
    from pathlib import Path

    from .arrays import write_outputs
    from .predictions import class_indices, class_names

    if classes_only:
        arrays = {}
        for name, y in outputs.items():
            arrays[name] = class_indices(y)
            if classes and Path(path).suffix.lower() == ".npz":
                arrays[f"{name}_names"] = class_names(arrays[name], classes)
        outputs = arrays
    try:
        write_outputs(path, outputs)
    except OSError as exc:
        return _fail(f"cannot write {path}: {exc.strerror or exc}")
    what = "class indices" if classes_only else "predictions"
    print(f"wrote {path} ({len(next(iter(outputs.values()))):,} {what})")
    return EXIT_OK


def _drawn_weights(model) -> bool:
    """Whether a spec's layers hold weights drawn from initializers (not all from pretrained(...) files)."""
    spec = model.spec
    from_files = {name for source in spec.model.pretrained for name in source.layers}
    return any(info.layer.name not in from_files and info.layer.weights(info.inputs) for info in spec.analysis.layers)


def _predict_model(args):
    """The model to predict with, from a file of any format nnspec reads."""
    from .api import load
    from .convert import model_kind, read

    layers = getattr(args, "layer", None)
    if model_kind(args.model) == "onnx" and not layers:  # run as it is, whoever wrote it
        return load(args.model, device=args.device)
    source = read(args.model, args.weights, args.seed)
    spec = _features(source, layers) if layers else source.spec()
    kept = {layer.name for layer in spec.model.layers}
    return load(spec, weights={k: v for k, v in source.weights.items() if k in kept}, device=args.device)


def _model_classes(model, path: str, weights: str | None) -> list[str] | None:
    """Class names a trained model carries (ONNX metadata), that lie beside its weights or its file
    (MODEL.classes.json, as nnspec train writes them), or that its spec's data source lists."""
    from pathlib import Path

    from .train.run import CLASSES_KEY, read_classes

    props = {p.key: p.value for p in model.onnx.metadata_props}
    if CLASSES_KEY in props:
        return json.loads(props[CLASSES_KEY])
    beside = (read_classes(Path(weights)) if weights else None) or read_classes(Path(path))
    train = model.spec.model.train if model.spec is not None else None
    return beside or (getattr(train.data, "classes", None) if train is not None else None)


def _is_data_source(text: str) -> bool:
    from pathlib import Path

    from .ir.training import DATA_SOURCES

    return Path(text).is_dir() or "(" in text or Path(text).suffix.lower() in (".h5", ".hdf5") or \
        (text in DATA_SOURCES.names and not Path(text).exists())


def _source_inputs(text: str, model, classes):
    """Inputs (and targets, classes) from a data source: an image or MNIST folder, .h5, a built-in set."""
    import numpy as np

    from .arrays import fit_inputs
    from .data import Sample, load_path

    shapes = [Sample(tuple(i.shape[1:]), i.dtype) for i in model.inputs]
    train = model.spec.model.train if model.spec is not None else None
    data = load_path(text, train.data if train is not None else None, inputs=shapes, classes=classes)
    data.check()
    xs, ys = data.batch(np.arange(len(data)))
    return fit_inputs(xs, model.inputs), (ys[0] if ys else None), classes or data.classes


def _npz_targets(path: str):
    """`y` of an .npz input, when it has one (the true labels --show writes beside the predictions)."""
    from pathlib import Path

    import numpy as np

    if Path(path).suffix.lower() != ".npz":
        return None
    with np.load(path, allow_pickle=False) as data:
        return data["y"] if "y" in data.files else (data["y0"] if "y0" in data.files else None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .failures import run

    return run(lambda: COMMANDS[args.command](args), sys.argv[1:] if argv is None else argv, args.debug)


if __name__ == "__main__":
    sys.exit(main())
