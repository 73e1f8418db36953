"""The study's pictures, drawn by Optuna's matplotlib views: the optimization history (each trial's
objective and the best so far) and each parameter's effect (objective against the parameter's value)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna

from ..atomic import atomic_path
from .settings import Settings


def plot(study: optuna.Study, settings: Settings) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    from optuna.visualization import matplotlib as views

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the views are marked experimental
        for name, view in (("history.png", views.plot_optimization_history), ("params.png", views.plot_slice)):
            axes = np.ravel(view(study, target_name=settings.objective))
            for ax in axes:
                if ax.get_xscale() == "log":  # a narrow log range labels its minor ticks on top of each other
                    ax.xaxis.set_minor_formatter(NullFormatter())
            figure = axes[0].figure
            target = settings.folder / name
            with atomic_path(target) as tmp:
                figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(target)
    return written
