"""livesqa: real-time, reference-free call-quality monitor.

The runtime needs numpy, onnxruntime and rich (plus soundfile/soxr for files);
never torch. See README.md.
"""

__version__ = "0.1.0"
