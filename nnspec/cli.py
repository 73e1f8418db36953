"""The `nnspec` command. Exit codes: 0 success, 1 `fmt --check` found changes, 2 bad input."""
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
    parser = _Parser(prog="nnspec", description="Describe a neural network once: check, summarize, format, "
                     "compile to ONNX, train, convert.")
    parser.add_argument("--version", action="version", version=f"nnspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("check", help="validate specs (exit 0 when all are valid, 2 otherwise)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".nn, .json or .yaml spec")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")

    p = sub.add_parser("summary", help="print the Keras-style summary table of a spec")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("fmt", help="format .nn specs canonically (comments kept)")
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

    p = sub.add_parser("predict", help="run a model on inputs from a .npy, .npz or .csv file")
    p.add_argument("model", metavar="MODEL", help=".nn, .json or .yaml spec, or .onnx model")
    p.add_argument("-i", "--input", required=True, metavar="FILE",
                   help=".npy; .npz with x (or x0, x1, ... or the input names); .csv of numbers, header optional")
    p.add_argument("-o", "--output", metavar="OUT.npy", help="write predictions (.npy, or .npz for several outputs) "
                   "instead of printing them")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when it works, else CPU (default)")
    _weight_options(p)

    p = sub.add_parser("train", help="train a model the way Keras fit would")
    p.add_argument("model", metavar="MODEL", help=".nn, .json or .yaml spec")
    p.add_argument("--data", metavar="DATA", help=".npz with x/y (or x0.., y0..), or an MNIST IDX folder "
                   "(default: the spec's data)")
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
    p.add_argument("-o", "--output", metavar="OUT.onnx", help="trained model (default: MODEL's name + .trained.onnx); "
                   "its weights go beside it as .npz")
    p.add_argument("--history", metavar="FILE.json", help="default: beside the output, .history.json")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="checkpoint after every epoch (default: beside the output)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    _weight_options(p)

    p = sub.add_parser("evaluate", help="loss and metrics of a model on data")
    p.add_argument("model", metavar="MODEL", help=".nn, .json or .yaml spec")
    p.add_argument("--data", required=True, metavar="DATA")
    p.add_argument("--weights", required=True, metavar="W.npz", help="trained weights (nnspec train writes them)")
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
    from .loader import load

    status = EXIT_OK
    for path in args.files:
        try:
            spec = load(path)
        except SpecError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        if not args.quiet:
            print(f"{path}: ok ({spec.analysis.total:,} parameters)")
    return status


@command("summary")
def _summary(args) -> int:
    from .loader import load
    from .summary import summary

    print(summary(load(args.file).analysis))
    return EXIT_OK


@command("fmt")
def _fmt(args) -> int:
    from .formatter import format_text
    from .loader import read_text
    from .atomic import write_text

    status = EXIT_OK
    for path in args.files:
        text = read_text(path)
        formatted = format_text(text, path)
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
    from .ir.model import Model

    print(json.dumps(Model.model_json_schema(), indent=2))
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

    from .loader import load
    from .train.run import configure, load_data, save_results, train
    from .weights import load_weights

    spec = load(args.model)
    config = configure(spec, _train_overrides(args))
    spec_dir = Path(args.model).resolve().parent
    source = args.data or config.data
    if source is None:
        return _fail(f"{args.model}: no data: give --data or a `data` line in the train section")
    data = load_data(source, spec_dir)
    validation = None
    if args.validation_data or config.validation_data:
        validation = load_data(args.validation_data or config.validation_data, spec_dir)
    output = Path(args.output or Path(args.model).stem + ".trained.onnx")
    history = Path(args.history or output.with_suffix(".history.json"))
    checkpoints = Path(args.checkpoint_dir or output.with_suffix(".checkpoint"))
    weights = load_weights(args.weights, spec.analysis) if args.weights else None
    seed = config.seed if config.seed is not None else 0
    run = train(spec, config, data, validation, weights, device=args.device, seed=seed, checkpoint_dir=checkpoints,
                resume=args.resume, verbose=config.verbose)
    save_results(spec, run, output, history)
    if config.verbose:
        print(f"wrote {output}, {output.with_suffix('.npz')}, {history}")
    return EXIT_OK


@command("evaluate")
def _evaluate(args) -> int:
    from pathlib import Path

    from .loader import load
    from .train.progress import format_logs
    from .train.run import configure, evaluate, load_data
    from .weights import load_weights

    spec = load(args.model)
    config = configure(spec, {"batch_size": args.batch_size})
    data = load_data(args.data, Path(args.model).resolve().parent)
    logs = evaluate(spec, config, data, load_weights(args.weights, spec.analysis), device=args.device)
    print(format_logs(logs))
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


@command("predict")
def _predict(args) -> int:
    from pathlib import Path

    import numpy as np

    from .api import InputError, load
    from .backends.onnx.runtime import DeviceError
    from .arrays import check_output, read_inputs, write_outputs

    if Path(args.model).suffix.lower() == ".onnx" and (args.weights or args.seed is not None):
        return _fail("--weights and --seed apply to specs; an ONNX model carries its weights")
    try:
        model = load(args.model, weights=args.weights, seed=args.seed, device=args.device)
        if args.output:
            check_output(args.output, len(model.output_names))
        outputs = model.predict(read_inputs(args.input, model.inputs), batch_size=args.batch_size)
    except (InputError, DeviceError) as exc:
        return _fail(str(exc))
    outputs = dict(zip(model.output_names, outputs if isinstance(outputs, list) else [outputs]))
    if args.output:
        try:
            write_outputs(args.output, outputs)
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
        return EXIT_OK
    with np.printoptions(threshold=sys.maxsize, linewidth=sys.maxsize):
        for name, y in outputs.items():
            print(f"{name}:\n{y}" if len(outputs) > 1 else y)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `nnspec schema | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("nnspec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
