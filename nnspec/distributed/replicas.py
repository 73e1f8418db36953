"""The replicas of a data-parallel run as one MPI communicator, and their gradient sums as MPI's Allreduce.

Replicas are started separately (local processes or Ray actors), so each begins as an MPI singleton; the
first opens a port and accepts the others one by one (MPI_Comm_accept/connect, merged into one
intracommunicator), wherever they run. mpi4py is imported only in the replicas: importing it starts MPI."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class MpiReplicas:
    """nnspec.backends.onnx.step.Replicas over an MPI intracommunicator."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.scratch: Path | None = None  # a folder of this replica's own (nnspec.train.run.train)

    def sum(self, values: np.ndarray) -> np.ndarray:
        from mpi4py import MPI

        out = np.empty_like(values)
        self.comm.Allreduce(np.ascontiguousarray(values), out, op=MPI.SUM)
        return out


def open_port() -> str:
    """Replica 0's address for the others to connect to."""
    from mpi4py import MPI

    return MPI.Open_port()


def join(port: str, rank: int, size: int) -> MpiReplicas:
    """All `size` replicas, joined through replica 0's `port`; ranks follow the replicas' numbers."""
    from mpi4py import MPI

    comm = MPI.COMM_SELF
    if rank > 0:
        comm = comm.Connect(port).Merge(high=True)
    while comm.Get_size() < size:  # every member takes part in accepting the next one
        comm = comm.Accept(port, root=0).Merge(high=False)
    if rank == 0:
        MPI.Close_port(port)
    return MpiReplicas(comm.Split(0, rank))
