"""Per-op profile of a streaming ONNX at batch B on one ORT thread, steady state (issue #18).

python results/streaming/profile_stream.py exported/livesqa-small-stream.onnx --batch 8 --calls 200
Groups ORT's node events (enable_profiling) by op type and by model part (from the node names
torch.onnx gives: /model/encoder/blocks.N/attn/..., /model/frontend..., ...), and times how much
of StreamingScorer.run is outside session.run (numpy state gather/scatter).
"""
import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from livesqa.bench import speechlike
from livesqa.scoring import session_options
from livesqa.streaming import StreamingScorer

NAMED = [  # a named module's node -> part; unnamed nodes take the part of the last named one
    ("/subsampling/", "subsampling (2 convs + proj)"),
    ("/ff1/", "feed-forwards"), ("/ff2/", "feed-forwards"),
    ("/qkv/", "attention: heads split, KV cache concat/slice, QK, mask, softmax, AV"),
    ("/norm/", "layernorms (attn/conv pre-norm, block final norm) + the block's next-state slice/stack"), ("/out/", "block glue (residuals, final norm)"),
    ("/pointwise_in/", "conv module: norm, pointwise_in, GLU, cache concat"),
        ("/depthwise", "conv module: depthwise conv (+ transposes)"),
    ("/depth_norm/", "conv module: depth_norm, SiLU, pointwise_out"),
    ("/pointwise_out/", "block glue (residuals, final norm)"),
    ("/layer_attention/", "head: layer attention, fc, pooling, readout"),
    ("/probe/", "head: layer attention, fc, pooling, readout"),
    ("/pool/", "head: layer attention, fc, pooling, readout"),
    ("/level/", "head: layer attention, fc, pooling, readout"),
    ("/readout/", "state outputs: stack/slice/concat of next_* (after the head)"),
]


def part_map(model_path: str) -> dict[str, str]:
    import onnx

    m = onnx.load(model_path, load_external_data=False)
    cur = "front end: DFT conv, power, mel MatMul, log, CMS/level"
    out = {}
    for n in m.graph.node:
        for key, part in NAMED:
            if re.search(re.escape(key.rstrip("/")) + r"(_\d+)?/", n.name):
                cur = part
                if key == "/readout/":
                    out[n.name] = "head: layer attention, fc, pooling, readout"
                    break
                break
        out.setdefault(n.name, cur)
    return out


def part_of(name: str, parts: dict[str, str]) -> str:
    if name in parts:
        return parts[name]
    best = max((k for k in parts if k and name.startswith(k)), key=len, default=None)
    return parts[best] if best else "unmapped (ORT-fused node)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    sc = StreamingScorer.load(a.model, max_batch=64)
    lay = sc.layout
    audio = speechlike(60.0, 16000, seed=1)
    streams = list(range(a.batch))
    pos = 0
    def feed(n):
        nonlocal pos
        for s in streams:
            st = (pos + 977 * s) % (audio.size - n)
            sc.push(s, audio[st:st + n])
        pos += n
    feed(lay.tail_samples)
    for _ in range(4):
        feed(lay.chunk_samples); sc.run(streams)
    # capture one steady-state feed dict
    st0 = [sc._streams[s] for s in streams]
    feed(lay.chunk_samples)
    feeds = {"audio": np.stack([s.pending[:lay.chunk_samples] for s in st0])}
    for t in lay.states:
        feeds[t.name] = np.concatenate([s.state[t.name] for s in st0], axis=0)
    # scorer overhead vs session.run
    t_run, t_sess = [], []
    plain = ort.InferenceSession(a.model, session_options(), providers=["CPUExecutionProvider"])
    for i in range(60):
        c0 = time.thread_time(); sc.run(streams); t_run.append(time.thread_time() - c0)
        feed(lay.chunk_samples)
        c0 = time.thread_time(); plain.run(None, feeds); t_sess.append(time.thread_time() - c0)
    opts = session_options()
    opts.enable_profiling = True
    opts.profile_file_prefix = "/tmp/prof/stream"
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    for _ in range(10):
        sess.run(None, feeds)
    for _ in range(a.calls):
        sess.run(None, feeds)
    prof = sess.end_profiling()
    ev = json.loads(Path(prof).read_text())
    runs = [e for e in ev if e.get("name") == "model_run"]
    nodes = [e for e in ev if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # drop the warm-up: keep events after the 10th model_run
    cut = sorted(r["ts"] for r in runs)[10]
    nodes = [e for e in nodes if e["ts"] >= cut]
    runs = [r for r in runs if r["ts"] >= cut]
    total_run = sum(r["dur"] for r in runs) / len(runs)
    by_op, by_part, cnt_op = defaultdict(float), defaultdict(float), defaultdict(int)
    per_node = defaultdict(float)
    parts = part_map(a.model)
    for e in nodes:
        op = e["args"].get("op_name", "?")
        nm = e["name"][: -len("_kernel_time")]
        by_op[op] += e["dur"]; cnt_op[op] += 1
        by_part[part_of(nm, parts)] += e["dur"]
        per_node[(nm, op)] += e["dur"]
    n = len(runs)
    parts = part_map(a.model)
    node_total = sum(by_op.values()) / n
    lines = [f"model {a.model}, batch {a.batch}, {n} profiled calls, one ORT thread",
             (f"session.run (profiled model_run) mean {total_run/1000:.2f} ms; node kernels {node_total/1000:.2f} ms; "
              f"nodes per call {len(nodes)//n}"),
             (f"thread CPU per call, median of 60: StreamingScorer.run {np.median(t_run)*1000:.2f} ms, "
              f"bare session.run {np.median(t_sess)*1000:.2f} ms"),
             "", "| op type | nodes/call | ms/call | % of kernel time |", "|---|---:|---:|---:|"]
    for op, d in sorted(by_op.items(), key=lambda x: -x[1]):
        lines.append(f"| {op} | {cnt_op[op]//n} | {d/n/1000:.3f} | {100*d/n/node_total:.1f} |")
    lines += ["", "| model part | ms/call | % |", "|---|---:|---:|"]
    for p, d in sorted(by_part.items(), key=lambda x: -x[1]):
        lines.append(f"| {p} | {d/n/1000:.3f} | {100*d/n/node_total:.1f} |")
    lines += ["", "top 25 nodes:", "| node | op | ms/call |", "|---|---|---:|"]
    for (nm, op), d in sorted(per_node.items(), key=lambda x: -x[1])[:25]:
        lines.append(f"| {nm} | {op} | {d/n/1000:.3f} |")
    txt = "\n".join(lines)
    if a.out:
        allrows = [f"{nm}\t{op}\t{part_of(nm, parts)}\t{d/n/1000:.4f}" for (nm, op), d in per_node.items()]
        Path(a.out + ".nodes.tsv").write_text("\n".join(allrows) + "\n")
    print(txt)
    if a.out:
        Path(a.out).write_text(txt + "\n")
    Path(prof).unlink()


if __name__ == "__main__":
    main()
