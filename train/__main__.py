"""`python -m train <stage> [args]`: one entry per training stage.

Each stage module exposes ``main(argv: list[str] | None = None) -> int``. Modules are
imported lazily so `--help` is fast and a missing optional dependency names itself.
"""

from __future__ import annotations

import importlib
import sys

STAGES: dict[str, tuple[str, str]] = {
    "asr-manifest": ("train.asr_data", "build the transcribed-speech manifest (speechocean762 + asterisk prompts)"),
    "extra-speech": ("train.extra_speech", "fetch and convert more clean talkers from Debian packages"),
    "simulate": ("train.simulate", "generate the degraded corpus from clean speech and noise"),
    "real-clips": ("train.real_clips", "append windows of the real AEC-challenge recordings to a corpus manifest"),
    "realchain": ("train.realchain", "held-out speech through real software (codec PLC, ffmpeg NS/limiter)"),
    "enhanced": ("train.enhanced", "noisy speech through real noise suppressors (RNNoise, noisereduce, ffmpeg anlmdn/afwtdn)"),
    "level-sweep": ("train.level_sweep", "talkers from whisper-quiet to a hot, clipping input (the level the students miss)"),
    "nb-sweep": ("train.nb_sweep", "device faults (clipping, lost frames, noise) heard through a narrowband path"),
    "window-crops": ("train.window_crops", "cut streams into runtime-sized crops, so teachers label exactly what the student sees"),
    "label": ("train.teachers", "label simulated clips with the teacher models (NISQA, DNSMOS)"),
    "pretrain-asr": ("train.pretrain_asr", "CTC pretraining of the Conformer encoder"),
    "probe": ("train.probe", "layer-wise probing of a frozen encoder (table + PNG)"),
    "finetune": ("train.finetune", "fine-tune the quality model"),
    "dense-targets": ("train.dense_targets", "the windowed model's scores on every whole-second row of each clip"),
    "stream-distill": ("train.stream_distill", "dense distillation of a streaming model from those targets; row agreement"),
    "average": ("train.average", "average the weights of a run's last snapshots (or given checkpoints)"),
    "evaluate": ("train.evaluate", "PCC/RMSE tables on the simulated test split and the P.835 set"),
    "grow": ("train.grow", "grow a trained student deeper (copies of its blocks): a larger student's warm start"),
    "level-head": ("train.level_head", "teach a trained student loudness: a small level MLP, all else frozen"),
    "level-hinge": ("train.level_hinge", "teach a trained student what level does: hinge terms below quiet / above hot, all else kept"),
    "self-label": ("train.self_label", "label a corpus with a model's own scores (a replay anchor for fine-tunes)"),
    "mos-level": ("train.mos_level", "re-fit the MOS output's level term to broadband level, all else frozen"),
    "lofo": ("train.lofo", "leave-one-family-out fine-tunes: which impairment families transfer"),
    "agreement": ("train.agreement", "label-free teacher-student agreement on real-chain, real and simulated audio"),
    "speech-head": ("train.speech_train", "train a per-frame speech head on a frozen quality model (issue 14)"),
    "speech-joint": ("train.speech_joint", "train the speech output jointly with the unfrozen encoder, quality self-distilled (issue 14)"),
    "export": ("train.export", "export to ONNX with the livesqa spec, with parity check"),
    "export-streaming": ("train.export_streaming", "export a chunk-streaming model to state-in/state-out ONNX, with parity check"),
    "sanity": ("train.sanity", "monotonicity checks of a model on synthetic degradations"),
    "bench": ("train.bench", "speed of exported models side by side (one thread)"),
    "card": ("train.model_card", "write the model card beside an exported model"),
    "onnx-import": ("train.onnx_import", "recover a checkpoint from an exported ONNX model (parity-checked)"),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in STAGES:
        print("usage: python -m train <stage> [options]\n\nstages:")
        for name, (_, text) in STAGES.items():
            print(f"  {name:<13} {text}")
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    from livesqa.errors import LivesqaError

    try:
        module = importlib.import_module(STAGES[args[0]][0])
        return int(module.main(args[1:]) or 0)
    except LivesqaError as e:  # the user's input, not a bug: one line, no traceback
        print(f"python -m train {args[0]}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"python -m train {args[0]}: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
