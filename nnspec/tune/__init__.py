"""Hyperparameter search: search spaces written in a spec (space, names, check: no Optuna needed)
and `nnspec tune`, which searches them with Optuna (study, objective, workers, report, plots)."""
