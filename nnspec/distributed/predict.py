"""`nnspec predict MODEL -i FOLDER -o OUT --backend ray`: batch prediction over a Ray Dataset.

The input folder's shards (.npy, .npz or Parquet files; or images, a part per IMAGES_PER_PART of them in
sorted order) become a Dataset of parts that is read lazily: each part is read by the actor that predicts
it, never by the driver. `map_batches` runs the parts on a pool of actors that each keep one onnxruntime
session (the CUDA provider where the actor has a GPU). Each part's predictions go to OUT/part-NNNNN.npy
(.npz with one key per output for several outputs), in the input's order, and OUT/index.json lists the
parts with their input file and row count. The parts are written into a temporary folder beside OUT that
becomes OUT only when all are written."""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import fit_inputs, read_inputs, write_outputs
from ..atomic import write_text
from ..errors import SpecError
from .cluster import connect, task_cpus

TOOL = "nnspec predict"
ARRAY_SUFFIXES = (".npy", ".npz", ".parquet")
IMAGES_PER_PART = 1000
INDEX = "index.json"


def run(args, load_model) -> int:
    """The command: checks its flags, loads the model (as local predict does: `load_model(args)`), predicts,
    says what it wrote."""
    from ..api import InputError
    from ..backends.onnx.runtime import DeviceError
    from .cluster import check_address, ray_module

    check_address(args, TOOL)
    if args.backend != "ray":
        raise SpecError("--workers sizes the actor pool of --backend ray", TOOL)
    if not args.output or args.show:
        raise SpecError("--backend ray writes its predictions to the folder -o OUT (and draws no --show)", TOOL)
    if args.workers is not None and args.workers < 1:
        raise SpecError(f"--workers takes a positive number, not {args.workers}", TOOL)
    ray_module(TOOL)
    try:
        model = load_model(args)
        index = predict(model, args.input, args.output, batch_size=args.batch_size, device=args.device,
                        address=args.address, workers=args.workers)
    except (InputError, DeviceError) as exc:
        raise SpecError(str(exc), TOOL) from None
    print(f"wrote {args.output}: {len(index)} part(s), {sum(p['rows'] for p in index):,} rows, and {INDEX}")
    return 0


def predict(model, folder: str, output: str, *, batch_size: int, device: str, address: str | None,
            workers: int | None) -> list[dict[str, Any]]:
    """Predict every part of `folder` into the folder `output`; returns the index it wrote."""
    images = _images(model, Path(folder)) if _is_image_folder(Path(folder)) else None
    parts = _parts(Path(folder), images)
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpecError(f"-o {output}: give a new or empty folder for the predictions' parts", TOOL)
    ray = connect(TOOL, address)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
    size = workers or max(1, min(len(parts), gpus or int(ray.cluster_resources().get("CPU", 1))))
    cpus = task_cpus(ray, size)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
    try:
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its plans, timings and tracebacks are not the user's
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        table = ray.data.from_items([{"part": i, **p} for i, p in enumerate(parts)], override_num_blocks=len(parts))
        done = table.map_batches(
            PartPredictor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size), num_cpus=cpus,
            num_gpus=1 if gpus else 0,
            fn_constructor_kwargs={"model": model.onnx.SerializeToString(), "images": images,
                                   "device": device, "batch_size": batch_size, "folder": str(staging),
                                   "threads": cpus})
        try:
            rows = done.take_all()
        except Exception as exc:  # not the input's fault: an actor died, or a bug
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise SpecError(f"an actor failed: {lines[-1] if lines else type(exc).__name__}", TOOL) from None
        index = sorted(rows, key=lambda row: row["part"])
        failed = next((row["error"] for row in index if row["error"]), None)
        if failed:
            raise SpecError(str(failed), TOOL)
        index = [{"file": str(r["file"]), "input": str(r["input"]), "rows": int(r["rows"])} for r in index]
        write_text(staging / INDEX, json.dumps({"outputs": model.output_names, "parts": index}, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return index


def _is_image_folder(folder: Path) -> bool:
    if not folder.is_dir():
        raise SpecError(f"-i {folder}: --backend ray reads a folder of .npy, .npz, Parquet or image files", TOOL)
    return not any(p.suffix.lower() in ARRAY_SUFFIXES for p in folder.iterdir())


def _parts(folder: Path, images) -> list[dict[str, Any]]:
    """What each part reads: an array file, or a range of the images of an image folder."""
    if images is None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in ARRAY_SUFFIXES)
        return [{"input": p.name, "path": str(p.resolve()), "start": 0, "stop": 0} for p in files]
    bounds = [(i, min(i + IMAGES_PER_PART, len(images))) for i in range(0, len(images), IMAGES_PER_PART)]
    return [{"input": f"{Path(images.files[a]).name}..{Path(images.files[b - 1]).name}", "path": "",
             "start": a, "stop": b} for a, b in bounds]


def _images(model, folder: Path):
    """The folder as local `nnspec predict` reads it (sized and scaled as the spec's data says)."""
    from ..data import Sample, load_path

    shapes = [Sample(tuple(i.shape[1:]), i.dtype) for i in model.inputs]
    train = model.spec.model.train if model.spec is not None else None
    data = load_path(str(folder), train.data if train is not None else None, inputs=shapes)
    if not hasattr(data, "files") or not len(data):
        raise SpecError(f"-i {folder}: no .npy, .npz, Parquet or image files in it", TOOL)
    return data


class PartPredictor:
    """An actor of the pool: one session, kept for every part it predicts."""

    def __init__(self, model: bytes, images, device: str, batch_size: int, folder: str, threads: int):
        import os

        import onnx

        from ..api import Model
        from ..backends.onnx.runtime import THREADS_ENV

        os.environ[THREADS_ENV] = str(threads)
        self.model = Model(onnx.load_from_string(model), device=device)
        self.batch_size, self.folder = batch_size, Path(folder)
        self.images = images  # an image folder's file list (nnspec.data), or None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..api import InputError
        from ..data import DataError

        part = int(batch["part"][0])
        try:
            inputs = self._read(Path(str(batch["path"][0])), int(batch["start"][0]), int(batch["stop"][0]))
            outputs = self.model.predict(inputs, batch_size=self.batch_size)
        except (SpecError, InputError, DataError) as exc:  # returned, not raised: Ray's wrapping loses its type
            return {"part": [part], "file": [""], "input": batch["input"], "rows": [0],
                    "error": [f"{batch['path'][0] or batch['input'][0]}: {exc}"]}
        outputs = dict(zip(self.model.output_names, outputs if isinstance(outputs, list) else [outputs]))
        name = f"part-{part:05d}" + (".npy" if len(outputs) == 1 else ".npz")
        write_outputs(self.folder / name, outputs)
        return {"part": [part], "file": [name], "input": batch["input"], "rows": [len(inputs[0])], "error": [""]}

    def _read(self, path: Path, start: int, stop: int) -> list[np.ndarray]:
        if self.images is not None:
            xs, _ = self.images.batch(np.arange(start, stop))
            return fit_inputs(xs, self.model.inputs)
        if path.suffix.lower() == ".parquet":
            return fit_inputs(_parquet(path, [i.name for i in self.model.inputs]), self.model.inputs)
        return read_inputs(path, self.model.inputs)


def _parquet(path: Path, names: list[str]) -> list[np.ndarray]:
    """A row per sample: a column per input (by name, or x / x0, x1, ... as in .npz files) holding numbers or
    fixed-size lists; for one input without such a column, every column, as the sample's features."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many kinds for a file that is not Parquet
        raise SpecError(f"cannot read Parquet: {' '.join(str(exc).split())}", str(path)) from None
    columns = table.column_names
    for keys in (names, ["x"] if len(names) == 1 else [], [f"x{i}" for i in range(len(names))]):
        if keys and all(k in columns for k in keys):
            return [_column(table.column(k).combine_chunks(), table.num_rows) for k in keys]
    if len(names) == 1:
        return [np.column_stack([_column(table.column(c).combine_chunks(), table.num_rows) for c in columns])]
    raise SpecError(f"holds the columns {columns}; the model's inputs need {names}", str(path))


def _column(column, rows: int) -> np.ndarray:
    """Numbers, or fixed-size lists of numbers (a row of features per sample, flattened)."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) or \
            pa.types.is_large_list(column.type):
        return column.flatten().to_numpy(zero_copy_only=False).reshape(rows, -1)
    return column.to_numpy(zero_copy_only=False)
