"""Runs the training and evaluation graphs: the state (parameters and optimizer slots) lives in
onnxruntime values on the device; each step binds the batch, runs, and swaps the state buffers. The
training step keeps one binding of the state per side of its double buffers between steps: binding a
few dozen state tensors anew each step cost a small model 2-3% of its step.

Data-parallel replicas (a split step, `replicas`) each run the gradient graph on their shard of the
global batch, sum the gradients, loss, metric statistics and moving statistics across replicas, and
run the update graph with the average, so every replica applies the same update."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import onnxruntime as ort

from .runtime import Session
from .training import StepGraphs


class Replicas(Protocol):
    """The replicas of a data-parallel run, seen from one of them (nnspec.distributed.replicas)."""

    rank: int
    size: int

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of every replica's `values`, on every replica."""


class Alone:
    """One replica: a split step run by itself."""

    rank, size = 0, 1

    def sum(self, values: np.ndarray) -> np.ndarray:
        return values


def shard(n: int, rank: int, size: int) -> slice:
    """Replica `rank`'s rows of a global batch of n: contiguous, sizes differing by one at most."""
    return slice(rank * n // size, (rank + 1) * n // size)


class OnnxStep:
    """The `Step` the training loop drives (nnspec.train.loop.Step)."""

    def __init__(self, graphs: StepGraphs, weights: dict[str, list[np.ndarray]], device: str = "auto",
                 seed: int = 0, notice: bool = True, batch_size: int = 32, replicas: Replicas | None = None):
        self.graphs = graphs
        self.seed = seed
        self.replicas = replicas or Alone()
        self.train_session = Session(graphs.train, device, notice=notice, cache=True)
        self._eval_session: Session | None = None  # started on the first evaluation: the first step comes sooner
        self.update_session = Session(graphs.update, device, notice=False, cache=True) \
            if graphs.update is not None else None
        self.device = "cuda" if self.train_session.provider.startswith("CUDA") else "cpu"
        self.metric_names = [m.name for m in graphs.metrics]
        initial = {p.name: np.asarray(weights[p.layer][p.index], np.float32) for p in graphs.params}
        initial.update({k: np.asarray(v, np.float32) for k, v in graphs.slots.items()})
        self.batch_size = batch_size
        initial.update(self._zero_states())
        self._state: dict[str, ort.OrtValue] = {}
        self._spare: dict[str, ort.OrtValue] = {}  # the other half of each double buffer
        self._bindings: dict[bool, ort.IOBinding] = {}  # train()'s, by which half of the buffers is read
        self._flipped = False  # whether the buffers are swapped relative to the kept bindings' first
        self.load_state(initial)

    @property
    def eval_session(self) -> Session:
        if self._eval_session is None:
            self._eval_session = Session(self.graphs.evaluate, self.device, notice=False, cache=True)
        return self._eval_session

    # ---- state ------------------------------------------------------------------------------
    def _zero_states(self) -> dict[str, np.ndarray]:
        return {k: np.zeros((self.batch_size, units), np.float32) for k, units in self.graphs.rnn_states.items()}

    def reset_states(self) -> None:
        """Stateful recurrent layers start again from zeros (Keras's `reset_states`)."""
        for k, v in self._zero_states().items():
            self._state[k] = self._value(v)
        self._bindings.clear()

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        # a copy: on the CPU the value wraps the array's memory, and steps write into the state's buffers
        return ort.OrtValue.ortvalue_from_numpy(np.array(array, np.float32, order="C"), self.device)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.numpy().copy() for k, v in self._state.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        known = set(self.graphs.slots) | set(self.graphs.rnn_states) | {p.name for p in self.graphs.params}
        missing = known - set(state)
        if missing:
            raise ValueError(f"state for another model or optimizer: it lacks {', '.join(sorted(missing)[:3])}")
        self._state = {k: self._value(state[k]) for k in known}
        written = self.graphs.applied or self.graphs.updates  # what a run swaps into its double buffer
        self._spare = {k: self._value(np.zeros_like(state[k], np.float32)) for k in written}
        self._bindings.clear()

    def weights(self) -> dict[str, list[np.ndarray]]:
        """Keras-ordered weights per layer, for compiling an inference model."""
        out: dict[str, list[np.ndarray]] = {}
        for p in self.graphs.params:
            out.setdefault(p.layer, []).append(self._state[p.name].numpy().copy())
        return out

    # ---- steps ------------------------------------------------------------------------------
    def _bind_common(self, binding, session: Session, xs, ys, sample_weight, batch_size: float) -> None:
        self._bind_batch(binding, xs, ys, sample_weight, batch_size)
        self._bind_state(binding, session)

    def _bind_batch(self, binding, xs, ys, sample_weight, batch_size: float) -> None:
        """The binding holds these arrays (bound, not copied) until the next step binds others."""
        for name, x in zip(self.graphs.x_names, xs):
            binding.bind_cpu_input(name, np.ascontiguousarray(x))
        for name, y in zip(self.graphs.y_names, ys):
            binding.bind_cpu_input(name, np.ascontiguousarray(y))
        binding.bind_cpu_input("sample_weight", np.ascontiguousarray(sample_weight, np.float32))
        binding.bind_cpu_input("batch_size", np.array(batch_size, np.float32))

    def _bind_state(self, binding, session: Session) -> None:
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

    def _noise(self, n: int, step: int):
        """Dropout masks and noise for a global batch of n: sample i's rows depend on (seed, step, layer, i)
        only, so replicas that each take a shard of the batch draw exactly what one process drawing the
        whole batch does."""
        for i, d in enumerate(self.graphs.noise):
            # one generator per (seed, step, layer): a resumed run draws exactly the same arrays
            yield d.name, d.sample(np.random.default_rng([self.seed, step, i]), n)

    def _swap(self, keys) -> None:
        for key in keys:  # the outputs become the next step's inputs
            self._state[key], self._spare[key] = self._spare[key], self._state[key]
        self._flipped = not self._flipped

    def _train_binding(self) -> ort.IOBinding:
        """The training step's binding of the state as the buffers lie now: made once per side."""
        binding = self._bindings.get(self._flipped)
        if binding is None:
            session = self.train_session
            binding = session.session.io_binding()
            self._bind_state(binding, session)
            for name in self._stat_names():  # first: the outputs keep the order they were first bound in
                binding.bind_output(name, "cpu")
            for key, out in self.graphs.updates.items():
                binding.bind_ortvalue_output(out, self._spare[key])
            self._bindings[self._flipped] = binding
        return binding

    def rows(self, n: int) -> slice:
        """This replica's rows of a global batch of n: the only ones `train` is given."""
        return shard(n, self.replicas.rank, self.replicas.size)

    def train(self, xs, ys, sample_weight, lr: float, step: int, n: int | None = None) -> tuple[float, np.ndarray]:
        """xs, ys, sample_weight: rows `self.rows(n)` of a global batch of n (default: all of them)."""
        if self.update_session is not None:
            return self._train_replica(xs, ys, sample_weight, lr, step, len(sample_weight) if n is None else n)
        session = self.train_session
        binding = self._train_binding()
        self._bind_batch(binding, xs, ys, sample_weight, len(sample_weight))
        binding.bind_cpu_input("learning_rate", np.array(lr, np.float32))
        binding.bind_cpu_input("iteration", np.array(step + 1, np.float32))
        for name, drawn in self._noise(len(sample_weight), step):
            binding.bind_cpu_input(name, drawn)
        for name in self._stat_names():  # fresh each step, else written into the last step's values
            binding.bind_output(name, "cpu")
        session.session.run_with_iobinding(binding)
        result = self._stats(binding, session)
        self._swap(self.graphs.updates)
        return result

    def _stat_names(self) -> list[str]:
        return ["loss"] + [f"metric{i}_{j}" for i, sizes in enumerate(self.graphs.stat_sizes) for j in range(len(sizes))]

    def _train_replica(self, xs, ys, sample_weight, lr: float, step: int, n: int) -> tuple[float, np.ndarray]:
        """A split step: gradients of this replica's shard (xs, ys) of a global batch of n, summed across
        replicas, then the update."""
        size = self.replicas.size
        rows = self.rows(n)
        session = self.train_session
        binding = session.session.io_binding()
        # the loss divides by n / size: a replica's summed loss times size / n, so the replicas' mean is the
        # loss of the whole batch, whatever the shards' sizes
        self._bind_common(binding, session, xs, ys, sample_weight, n / size)
        for name, drawn in self._noise(n, step):
            binding.bind_cpu_input(name, np.ascontiguousarray(drawn[rows]))
        summed = self._stat_names() + list(self.graphs.gradients.values()) + list(self.graphs.updates.values())
        for name in session.outputs:  # all of them are summed
            binding.bind_output(name, "cpu")
        session.session.run_with_iobinding(binding)
        values = dict(zip(session.outputs, (v.numpy() for v in binding.get_outputs())))
        flat = self.replicas.sum(np.concatenate([np.asarray(values[k], np.float64).reshape(-1) for k in summed]))
        total, offset = {}, 0
        for name in summed:
            size_of = np.asarray(values[name]).size
            total[name] = flat[offset:offset + size_of].reshape(np.shape(values[name]))
            offset += size_of
        mean = {k: (total[k] / size).astype(np.float32) for k in summed[len(self._stat_names()):]}
        for key, out in self.graphs.updates.items():  # moving statistics: the replicas' mean, as Keras reads them
            self._state[key] = self._value(mean[out])
        update = self.update_session
        binding = update.session.io_binding()
        wanted = {i.name for i in update.inputs}
        for key, value in self._state.items():
            if key in wanted:
                binding.bind_ortvalue_input(key, value)
        for out in self.graphs.gradients.values():
            binding.bind_cpu_input(out, mean[out])
        binding.bind_cpu_input("learning_rate", np.array(lr, np.float32))
        binding.bind_cpu_input("iteration", np.array(step + 1, np.float32))
        for key, out in self.graphs.applied.items():
            binding.bind_ortvalue_output(out, self._spare[key])
        update.session.run_with_iobinding(binding)
        self._swap(self.graphs.applied)
        stats = [total[f"metric{i}_{j}"].reshape(-1) for i, sizes in enumerate(self.graphs.stat_sizes)
                 for j in range(len(sizes))]
        return float(total["loss"]) / size, np.concatenate(stats) if stats else np.zeros(0)

    def evaluate(self, xs, ys, sample_weight) -> tuple[float, np.ndarray]:
        session = self.eval_session
        binding = session.session.io_binding()
        self._bind_common(binding, session, xs, ys, sample_weight, len(sample_weight))
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
