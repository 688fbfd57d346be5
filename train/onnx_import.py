"""Recover a training checkpoint from an exported ONNX model (`python -m train onnx-import`).

Why: checkpoints live in the ignored ``runs/`` folder and do not survive a new machine, but
every shipped model's ONNX file holds its exact weights and (in ``livesqa_spec``) its model
config. Continuing training from the shipped model then needs no rebuild of the whole chain.

The exporter keeps named initializers for most parameters; Linear weights feeding a
``MatMul`` become anonymous transposed constants (``onnx::MatMul_N``). Those are matched to
the torch parameters by following each MatMul to the ``Add`` of a named bias (``X.bias`` ->
``X.weight``), and the rest by shape in graph order. The result is checked: the rebuilt
torch model must reproduce the ONNX model's scores (``--tolerance``), or nothing is written.
The CTC head is not in the quality graph; it keeps its initial values (``extra`` says so).

Streaming files (``extra.kind = "streaming"``, ``python -m train export-streaming``) name
their weights ``model.<key>`` (the exported module wraps the quality model); the prefix is
dropped, and parity is checked chunk by chunk with state carried
(``train.export_streaming.check_parity``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from livesqa.errors import ConfigError
from train.checkpoint import save_checkpoint
from train.config import ModelConfig
from train.model import QualityModel

STREAMING_KIND = "streaming"  # train.export_streaming.KIND (not imported: it pulls in the exporter)
WRAPPED = "model."


def _initializers(model: object) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}  # type: ignore[attr-defined]


def _matmul_to_bias(model: object, inits: dict[str, np.ndarray]) -> dict[str, str]:
    """Anonymous MatMul weight name -> the named bias added to its output (if any)."""
    nodes = list(model.graph.node)  # type: ignore[attr-defined]
    consumers: dict[str, list[object]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: dict[str, str] = {}
    for n in nodes:
        if n.op_type != "MatMul":
            continue
        w = next((i for i in n.input if i in inits and not i.endswith((".weight", ".bias"))), None)
        if w is None:
            continue
        for c in consumers.get(n.output[0], []):
            if c.op_type == "Add":  # type: ignore[attr-defined]
                bias = next((i for i in c.input if i in inits and i.endswith(".bias")), None)  # type: ignore[attr-defined]
                if bias:
                    out[w] = bias
    return out


def state_dict_from_onnx(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], list[str]]:
    """(model config, full state dict, keys left at their initial values)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"ONNX model not found: {p}")
    model = onnx.load(str(p))
    meta = {m.key: m.value for m in model.metadata_props}
    if "livesqa_spec" not in meta:
        raise ConfigError(f"{p}: no livesqa_spec metadata (not a livesqa export)")
    spec = json.loads(meta["livesqa_spec"])
    raw_cfg = spec.get("extra", {}).get("model_config")
    if not raw_cfg:
        raise ConfigError(f"{p}: its spec holds no model_config")
    cfg = ModelConfig.from_dict(json.loads(raw_cfg))
    torch_model = QualityModel(cfg)
    target = torch_model.state_dict()
    inits = _initializers(model)
    if spec.get("extra", {}).get("kind") == STREAMING_KIND:  # StreamingStep wraps the model as `model`
        inits = {n[len(WRAPPED) :] if n.startswith(WRAPPED) else n: v for n, v in inits.items()}
        for n in model.graph.node:
            n.input[:] = [i[len(WRAPPED) :] if i.startswith(WRAPPED) else i for i in n.input]
            n.output[:] = [o[len(WRAPPED) :] if o.startswith(WRAPPED) else o for o in n.output]
    # the exporter de-duplicates equal tensors: a parameter may survive only as an Identity
    for n in model.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in inits:
            inits[n.output[0]] = inits[n.input[0]]
    state: dict[str, torch.Tensor] = {}
    for k, v in target.items():
        if k in inits and tuple(inits[k].shape) == tuple(v.shape):
            state[k] = torch.from_numpy(inits[k].copy())
    for w, bias in _matmul_to_bias(model, inits).items():
        key = bias[: -len(".bias")] + ".weight"
        if key in target and key not in state and inits[w].T.shape == tuple(target[key].shape):
            state[key] = torch.from_numpy(inits[w].T.copy())
    # what is left (Linear layers without bias, reshaped parameters): by shape, in graph order
    anonymous = [n for n in inits if n not in target and n not in _matmul_to_bias(model, inits)]
    for k, v in target.items():
        if k in state or k.startswith(("ctc_head.", "frontend.")):
            continue
        for n in anonymous:
            arr = inits[n]
            # a 2-D constant is a transposed Linear weight; others only gained unit axes
            cand = arr.T if arr.ndim == 2 else arr.reshape(tuple(v.shape)) if arr.size == v.numel() else None
            if cand is not None and cand.shape == tuple(v.shape):
                state[k] = torch.from_numpy(np.ascontiguousarray(cand).copy())
            if k in state:
                anonymous.remove(n)
                break
    left = [k for k in target if k not in state]
    for k in left:
        state[k] = target[k]
    return cfg, state, left


def max_abs_difference(onnx_path: str | Path, torch_model: QualityModel, seconds: float = 4.0) -> float:
    """Largest score difference between ONNX Runtime and torch on noise and a chirp."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    batch = np.stack([0.05 * rng.standard_normal(n), 0.1 * np.sin(2 * np.pi * (200 + 300 * t) * t)])
    batch = batch.astype(np.float32)
    ours = torch_model(torch.from_numpy(batch)).detach().numpy()
    theirs = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
    return float(np.max(np.abs(ours - theirs)))


def is_streaming(onnx_path: str | Path) -> bool:
    import onnx

    meta = {m.key: m.value for m in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    return json.loads(meta.get("livesqa_spec", "{}")).get("extra", {}).get("kind") == STREAMING_KIND


def parity(onnx_path: str | Path, torch_model: QualityModel) -> float:
    """Largest score difference between the file and the rebuilt model (windowed or streaming)."""
    if is_streaming(onnx_path):
        from livesqa.spec import read_spec
        from train.export_streaming import check_parity, per_layer_state
        from train.streaming import StreamingStep

        layered = per_layer_state(read_spec(Path(onnx_path)).extra)
        return check_parity(StreamingStep(torch_model, per_layer_state=layered), Path(onnx_path))
    return max_abs_difference(onnx_path, torch_model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train onnx-import", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="an exported livesqa ONNX model")
    parser.add_argument("--out", required=True, help="checkpoint to write (e.g. runs/v040/best.pt)")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args(argv)
    try:
        cfg, state, left = state_dict_from_onnx(args.model)
        torch_model = QualityModel(cfg)
        torch_model.load_state_dict(state)
        torch_model.eval()
        with torch.no_grad():
            diff = parity(args.model, torch_model)
        if diff > args.tolerance:
            raise ConfigError(f"{args.model}: rebuilt weights differ from the ONNX graph by {diff:.2e} "
                              f"(tolerance {args.tolerance}); not written")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_checkpoint(args.out, torch_model, cfg, stage="quality",
                    extra={"imported_from": str(args.model), "parity_max_abs": diff,
                           "not_in_onnx": ",".join(left)})
    print(f"wrote {args.out} (max |torch - onnx| = {diff:.2e}; not in the graph: {len(left)} tensors)")
    return 0
