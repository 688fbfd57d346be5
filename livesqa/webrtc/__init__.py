"""WebRTC monitoring: rooms where browsers talk to each other while livesqa scores each one.

Public surface: ``livesqa webrtc --room NAME`` (:mod:`livesqa.webrtc.command`). Modules:
``server`` (aiohttp signalling), ``room`` (participants, liveness), ``relay`` (the small SFU),
``ingest`` (gap-aware frames -> chunks), ``netstats``/``emodel`` (loss, jitter, G.107),
``participant`` (per-participant pipeline), ``scoreproc`` (scoring in a child process),
``consent``/``overload`` (keeping calls alive on a host short of CPU), ``metrics`` (Prometheus),
``render`` (dashboard), ``client`` (aiortc test and load peers). Needs the ``webrtc`` extra: ``pip install 'livesqa[webrtc]'``.
"""
