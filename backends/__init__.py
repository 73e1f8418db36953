"""Backends that read and write other frameworks' model files (installed as nnspec.backends)."""
