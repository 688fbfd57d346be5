"""PyTorch side of livesqa: model, data, training stages and ONNX export.

Imports ``livesqa`` (for the spec and audio helpers); ``livesqa`` never imports this.
"""
