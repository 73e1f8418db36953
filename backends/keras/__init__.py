"""Keras model files: a safe reader (no TensorFlow/Keras needed); see reader.py."""
