"""Runs the training and evaluation graphs: the state (parameters and optimizer slots) lives in
onnxruntime values on the device; each step binds the batch, runs, and swaps the state buffers."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from .runtime import Session
from .training import StepGraphs


class OnnxStep:
    """The `Step` the training loop drives (nnspec.train.loop.Step)."""

    def __init__(self, graphs: StepGraphs, weights: dict[str, list[np.ndarray]], device: str = "auto",
                 seed: int = 0, notice: bool = True, batch_size: int = 32):
        self.graphs = graphs
        self.seed = seed
        self.train_session = Session(graphs.train, device, notice=notice)
        self._eval_session: Session | None = None  # started on the first evaluation: the first step comes sooner
        self.device = "cuda" if self.train_session.provider.startswith("CUDA") else "cpu"
        self.metric_names = [m.name for m in graphs.metrics]
        initial = {p.name: np.asarray(weights[p.layer][p.index], np.float32) for p in graphs.params}
        initial.update({k: np.asarray(v, np.float32) for k, v in graphs.slots.items()})
        self.batch_size = batch_size
        initial.update(self._zero_states())
        self._state: dict[str, ort.OrtValue] = {}
        self._spare: dict[str, ort.OrtValue] = {}  # the other half of each double buffer
        self.load_state(initial)

    @property
    def eval_session(self) -> Session:
        if self._eval_session is None:
            self._eval_session = Session(self.graphs.evaluate, self.device, notice=False)
        return self._eval_session

    # ---- state ------------------------------------------------------------------------------
    def _zero_states(self) -> dict[str, np.ndarray]:
        return {k: np.zeros((self.batch_size, units), np.float32) for k, units in self.graphs.rnn_states.items()}

    def reset_states(self) -> None:
        """Stateful recurrent layers start again from zeros (Keras's `reset_states`)."""
        for k, v in self._zero_states().items():
            self._state[k] = self._value(v)

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, np.float32), self.device)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.numpy().copy() for k, v in self._state.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        known = set(self.graphs.slots) | set(self.graphs.rnn_states) | {p.name for p in self.graphs.params}
        missing = known - set(state)
        if missing:
            raise ValueError(f"state for another model or optimizer: it lacks {', '.join(sorted(missing)[:3])}")
        self._state = {k: self._value(state[k]) for k in known}
        self._spare = {k: self._value(np.zeros_like(state[k], np.float32)) for k in self.graphs.updates}

    def weights(self) -> dict[str, list[np.ndarray]]:
        """Keras-ordered weights per layer, for compiling an inference model."""
        out: dict[str, list[np.ndarray]] = {}
        for p in self.graphs.params:
            out.setdefault(p.layer, []).append(self._state[p.name].numpy().copy())
        return out

    # ---- steps ------------------------------------------------------------------------------
    def _bind_common(self, binding, session: Session, xs, ys, sample_weight) -> None:
        for name, x in zip(self.graphs.x_names, xs):
            binding.bind_cpu_input(name, np.ascontiguousarray(x))
        for name, y in zip(self.graphs.y_names, ys):
            binding.bind_cpu_input(name, np.ascontiguousarray(y))
        binding.bind_cpu_input("sample_weight", np.ascontiguousarray(sample_weight, np.float32))
        binding.bind_cpu_input("batch_size", np.array(len(sample_weight), np.float32))
        wanted = {i.name for i in session.inputs}
        for key, value in self._state.items():
            if key in wanted:
                binding.bind_ortvalue_input(key, value)

    def _stats(self, binding, session: Session) -> tuple[float, np.ndarray]:
        outputs = dict(zip(session.outputs, binding.get_outputs()))
        loss = float(outputs["loss"].numpy())
        stats = [outputs[f"metric{i}_{j}"].numpy().reshape(-1)
                 for i, sizes in enumerate(self.graphs.stat_sizes) for j in range(len(sizes))]
        return loss, np.concatenate(stats).astype(np.float64) if stats else np.zeros(0)

    def train(self, xs, ys, sample_weight, lr: float, step: int) -> tuple[float, np.ndarray]:
        session = self.train_session
        binding = session.session.io_binding()
        self._bind_common(binding, session, xs, ys, sample_weight)
        binding.bind_cpu_input("learning_rate", np.array(lr, np.float32))
        binding.bind_cpu_input("iteration", np.array(step + 1, np.float32))
        n = len(sample_weight)
        for i, d in enumerate(self.graphs.dropout):
            # one generator per (seed, step, layer): a resumed run draws exactly the same masks
            rng = np.random.default_rng([self.seed, step, i])
            shape = (n, *[s for s in d.shape[1:]])
            keep = rng.random(shape, dtype=np.float32) >= d.rate
            binding.bind_cpu_input(d.name, keep.astype(np.float32) * np.float32(1.0 / (1.0 - d.rate)))
        for name in ["loss"] + [f"metric{i}_{j}" for i, sizes in enumerate(self.graphs.stat_sizes)
                                for j in range(len(sizes))]:
            binding.bind_output(name, "cpu")
        for key, out in self.graphs.updates.items():
            binding.bind_ortvalue_output(out, self._spare[key])
        session.session.run_with_iobinding(binding)
        result = self._stats(binding, session)
        for key in self.graphs.updates:  # the outputs become the next step's inputs
            self._state[key], self._spare[key] = self._spare[key], self._state[key]
        return result

    def evaluate(self, xs, ys, sample_weight) -> tuple[float, np.ndarray]:
        session = self.eval_session
        binding = session.session.io_binding()
        self._bind_common(binding, session, xs, ys, sample_weight)
        for name in session.outputs:
            binding.bind_output(name, "cpu")
        session.session.run_with_iobinding(binding)
        return self._stats(binding, session)

    def finalize(self, sums: np.ndarray) -> dict[str, float]:
        out, offset = {}, 0
        for metric, sizes in zip(self.graphs.metrics, self.graphs.stat_sizes):
            parts = []
            for size in sizes:
                parts.append(sums[offset:offset + size] if size > 1 else float(sums[offset]))
                offset += size
            out[metric.name] = metric.finalize(parts)
        return out
