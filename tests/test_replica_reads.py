"""A data-parallel replica reads only its shard of every global batch (issue #14): each replica of a
`--workers 2` run asks the data set for exactly its rows, so the two read every sample once per epoch
between them, and an .npz source is memory-mapped, so the rows a replica never asks for are never read."""
import gzip
import json

import numpy as np
import pytest

from nnspec.backends.onnx.step import OnnxStep, shard
from nnspec.backends.onnx.training import build
from conftest import FIXTURES
from nnspec.data import DataError, Dataset, load, load_path, parse_source
from nnspec.ir.training import TrainConfig
from nnspec.loader import loads
from nnspec.train.loop import Trainer
from nnspec.weights import initial_weights

SAMPLES, BATCH, EPOCHS, SEED = 200, 64, 2, 3  # batches of 64, 64, 64 and 8


class CountedReads(Dataset):
    """A data set that records the indices of every read of its inputs."""

    def __post_init__(self):
        super().__post_init__()
        self.reads: list[np.ndarray] = []

    def read_x(self, indices):
        self.reads.append(np.array(indices))
        return super().read_x(indices)


class OtherReplicaAlike:
    """Replica `rank` of 2 whose partner (absent here) sends the same sums: enough to drive the loop."""

    size = 2

    def __init__(self, rank: int):
        self.rank = rank

    def sum(self, values):
        return values * self.size


def test_each_replica_reads_only_its_shard_of_every_batch(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(SAMPLES, 4)).astype(np.float32),
             y=rng.normal(size=(SAMPLES, 2)).astype(np.float32))
    source = load_path(tmp_path / "d.npz")
    assert all(isinstance(a, np.memmap) for a in source.xs + source.ys)  # rows are read only when asked for
    model = loads(json.dumps({"inputs": [{"name": "x", "shape": [4]}],
                              "layers": [{"type": "Dense", "units": 2}]}), "m.json")
    config = TrainConfig(loss="mse", optimizer={"name": "sgd", "learning_rate": 0.01}, batch_size=BATCH,
                         epochs=EPOCHS, shuffle=True)
    graphs = build(model.analysis, config, [((2,), "float32")], split=True)
    per_epoch = []
    for rank in (0, 1):
        data = CountedReads(source.xs, source.ys, source=source.source)
        step = OnnxStep(graphs, initial_weights(model.analysis, 0), device="cpu", notice=False, batch_size=BATCH,
                        replicas=OtherReplicaAlike(rank))
        Trainer(step, config, seed=SEED, verbose=0).fit(data)
        expected = []
        for epoch in range(EPOCHS):
            order = np.random.default_rng([SEED, epoch]).permutation(SAMPLES)
            for start in range(0, SAMPLES, BATCH):
                batch = order[start:start + BATCH]
                expected.append(batch[shard(len(batch), rank, 2)])
        assert len(data.reads) == len(expected)
        for got, want in zip(data.reads, expected):
            np.testing.assert_array_equal(got, want)
        assert sum(len(r) for r in data.reads) == EPOCHS * SAMPLES // 2  # half the data, never the whole
        per_epoch.append(np.split(np.concatenate(data.reads), EPOCHS))
    for mine, theirs in zip(*per_epoch):  # between them, every sample once per epoch
        np.testing.assert_array_equal(np.sort(np.concatenate([mine, theirs])), np.arange(SAMPLES))


def test_raw_idx_files_are_memory_mapped_and_read_as_their_gzip_originals(tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((FIXTURES / "mnist" / f"{name}.gz").read_bytes()))
    raw, packed = (load(parse_source(f'mnist("{folder}", normalize=255, start=100, stop=400)'))
                   for folder in (tmp_path, FIXTURES / "mnist"))
    assert isinstance(raw.inner.xs[0], np.memmap)  # a batch reads only its rows, at their offsets
    assert len(raw) == len(packed) == 300 and raw.x_samples() == packed.x_samples()
    for idx in ([299, 0, 17, 17], list(range(40, 72))):
        for got, want in zip(raw.batch(np.array(idx)), packed.batch(np.array(idx))):
            np.testing.assert_array_equal(got[0], want[0])
            assert got[0].dtype == want[0].dtype
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DataError, match="IDX header promises 7840000 bytes of data, file has 7839995"):
        load(parse_source(f'mnist("{tmp_path}")'))
