"""Training: the `fit` loop, its callbacks, progress display, schedules and checkpoints.

The loop drives a `Step` (the compiled training graph) and knows nothing of ONNX.
"""
