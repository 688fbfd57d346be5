"""The exception tree of livesqa, documented in one place.

Every error a user can cause (bad file, missing device, bad model, bad CSV path)
is a :class:`LivesqaError`; the CLI prints its message on one line and exits
non-zero, with no traceback. Anything else is a bug.

    LivesqaError
    ├── ModelSpecError       model file missing, unloadable, or without a valid spec
    ├── AudioInputError      unreadable/empty/too-short audio, bad samples
    ├── DeviceError          no PortAudio, no such device, device lost mid-stream
    ├── SinkError            output (CSV/JSONL) cannot be opened or written
    ├── ConfigError          invalid configuration value or file
    └── WebRTCError          signalling / room errors
"""

from __future__ import annotations


class LivesqaError(Exception):
    """Base of every error that is the user's input, not a bug."""


class ModelSpecError(LivesqaError):
    """The model file is missing, not ONNX, or lacks a valid livesqa spec."""


class AudioInputError(LivesqaError):
    """Audio that cannot be read or used (corrupt, empty, too short, non-finite)."""


class DeviceError(LivesqaError):
    """An audio device is missing, unusable, or disappeared."""


class SinkError(LivesqaError):
    """An output file cannot be created or written."""


class ConfigError(LivesqaError):
    """A configuration value or file is invalid."""


class WebRTCError(LivesqaError):
    """A signalling or room error."""
