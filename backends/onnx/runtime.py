"""The one owner of onnxruntime sessions: which provider runs, with what options, and how data
goes in and out.

onnxruntime-gpu quietly falls back to the CPU when CUDA cannot start, so the provider a session
really got is read back from it, and said in one line on stderr with the reason: when it is CUDA,
or when a GPU is present and CUDA still could not start (on a machine without a GPU, or with
`--device cpu`, the CPU is no news).
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import platform
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
import onnxruntime as ort

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """The requested device cannot run the model."""


@dataclass(frozen=True)
class Choice:
    device: str  # "cuda" or "cpu"
    reason: str
    worth_saying: bool  # a CPU fallback is news only where a GPU is there to be missed


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU (a device node, or the driver loaded; WSL's /dev/dxg)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/proc/driver/nvidia/version") \
        or os.path.exists("/dev/dxg")


def physical_cores() -> int:
    """Cores for intra-op threads: hyperthreads share a core's arithmetic units, so count cores."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or 1
    except ImportError:
        try:
            return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers limit it)
        except AttributeError:
            return os.cpu_count() or 1


THREADS_ENV = "NNSPEC_INTRA_OP_THREADS"


def intra_op_threads() -> int:
    """Threads a session computes with: $NNSPEC_INTRA_OP_THREADS when it is a positive number (nnspec
    tune --jobs K sets it to cores / K in each of its K worker processes), else the physical cores."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else physical_cores()


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """onnxruntime's C++ logger writes to file descriptor 2; keep it off the user's terminal."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def _probe_model() -> bytes:
    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "probe",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=10).SerializeToString()


@lru_cache(maxsize=None)
def cuda_status() -> tuple[bool, str]:
    """(usable, why): whether a session here really gets the CUDA provider. Probed once per process."""
    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider"
    with _captured_stderr() as log:
        if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from the `[cuda]` extra's NVIDIA wheels, not the system's
        session = ort.InferenceSession(_probe_model(), providers=[CUDA, CPU])
    if session.get_providers()[0] == CUDA:
        return True, "CUDA provider available"
    detail = next((m.group(1) for line in log for m in [re.search(r"with error: (.*?)(?:\x1b|$)", line)] if m), None)
    return False, f"the CUDA provider could not start ({detail or 'no usable GPU, or CUDA/cuDNN libraries missing'})"


def choose(device: str = "auto") -> Choice:
    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return Choice("cpu", "requested", worth_saying=False)
    usable, why = cuda_status()
    if usable:
        return Choice("cuda", "requested" if device == "cuda" else why, worth_saying=True)
    if device == "cuda":
        raise DeviceError(f"CUDA was requested but {why}")
    return Choice("cpu", why, worth_saying=gpu_present())


def _options(optimize: bool = True) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = intra_op_threads()
    options.log_severity_level = 3  # errors only: warnings about unused initializers are not the user's
    return options


CACHE_ENV = "NNSPEC_CACHE_DIR"


class SessionCache:
    """onnxruntime's optimized graphs, saved by the first session of a graph and loaded by the next with
    optimization off. Creating a session of a deep graph is dominated by optimizing it and planning the
    memory of the unoptimized graph, both growing faster than its depth (bench/PROFILE.md): the saved
    graph is smaller and needs neither. The key holds everything the optimized graph depends on: the
    graph, the onnxruntime version, the providers and the CPU's features (onnxruntime lays convolutions
    out for the CPU's vector width). A file that fails to load is rebuilt."""

    MIN_NODES = 2000  # below this a session is created in well under a second: no file is worth keeping
    ENTRIES = 32  # the newest files kept

    def __init__(self, data: bytes, providers: list):
        self.data, self.providers = data, providers
        key = hashlib.sha256(data)
        key.update(repr((ort.__version__, providers, _cpu_features())).encode())
        self.folder = cache_folder()
        self.path = self.folder / f"{key.hexdigest()}.onnx"

    def session(self) -> ort.InferenceSession:
        if self.path.exists():
            try:
                return ort.InferenceSession(str(self.path), _options(optimize=False), providers=self.providers)
            except Exception:  # onnxruntime's errors share no base class: unreadable, truncated, other build
                self.path.unlink(missing_ok=True)
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:  # a read-only home: no cache, as before
            return ort.InferenceSession(self.data, _options(), providers=self.providers)
        options = _options()
        partial = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp")
        options.optimized_model_filepath = str(partial)
        session = ort.InferenceSession(self.data, options, providers=self.providers)
        if partial.exists():  # onnxruntime wrote it whole while creating the session
            os.replace(partial, self.path)
            self._prune()
        return session

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in files[self.ENTRIES:]:
            old.unlink(missing_ok=True)


def cache_folder() -> Path:
    """$NNSPEC_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) /nnspec/sessions."""
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnspec"
    return Path(base) / "sessions"


@lru_cache(maxsize=None)
def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith(("flags", "Features"))), platform.processor())
    except OSError:
        return platform.machine() + platform.processor()


class Session:
    """An InferenceSession on the chosen provider. Weights are initializers, so they stay on the
    device; each call binds its inputs and outputs (IOBinding) instead of copying through `run`.
    `tf32=False` keeps CUDA's float32 matmuls and convolutions exact (as the tests need)."""

    def __init__(self, model: onnx.ModelProto | bytes | str, device: str = "auto", tf32: bool = False,
                 notice: bool = True, cache: bool = False):
        """`cache`: keep onnxruntime's optimized form of a deep graph (a training step, whose weights
        are inputs, not initializers) for the next session of the same graph (SessionCache)."""
        self.choice = choose(device)
        data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
        providers = [(CUDA, {"use_tf32": str(int(tf32))}), CPU] if self.choice.device == "cuda" else [CPU]
        # CPU only: a graph optimized for CUDA, loaded unoptimized, might place nodes differently (unmeasured)
        deep = isinstance(model, onnx.ModelProto) and len(model.graph.node) >= SessionCache.MIN_NODES
        self.session = SessionCache(data, providers).session() if cache and deep and providers == [CPU] else \
            ort.InferenceSession(data, _options(), providers=providers)
        self.provider = self.session.get_providers()[0]
        if self.choice.device == "cuda" and self.provider != CUDA:
            raise DeviceError("the CUDA provider did not start for this model")
        if notice and self.choice.worth_saying:
            print(f"nnspec: running on {self.provider} ({self.choice.reason})", file=sys.stderr)
        self.inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._device = "cuda" if self.provider == CUDA else "cpu"
        self._binding = self.session.io_binding()
        self._shapes: tuple | None = None

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        binding = self._binding
        shapes = tuple(a.shape for a in arrays)
        if shapes != self._shapes:  # outputs allocated by one run are reused by the next of the same shapes
            binding.clear_binding_outputs()
            for name in self.outputs:
                binding.bind_output(name, self._device)
            self._shapes = shapes
        for info, x in zip(self.inputs, arrays):
            x = np.ascontiguousarray(x)
            if self._device == "cpu":
                binding.bind_cpu_input(info.name, x)  # no copy: onnxruntime reads the array in place
            else:
                binding.bind_ortvalue_input(info.name, ort.OrtValue.ortvalue_from_numpy(x, self._device))
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
