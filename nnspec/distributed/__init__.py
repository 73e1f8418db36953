"""nnspec past one machine: tuning trials as Ray tasks, batch prediction over Ray Data, and data-parallel
training whose replicas average gradients through MPI. Ray is the `[ray]` extra, imported only here."""
