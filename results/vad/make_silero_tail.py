"""Write the bundled Silero graph without its STFT: ``livesqa/assets/silero/silero_vad_16k_sequence_tail.onnx``.

    python results/vad/make_silero_tail.py

Why: the sequence export spends about a third of its time in one Conv, a fixed periodic-Hann
windowed DFT (``stft_split_cost.md``). The runtime computes those magnitudes with numpy's FFT
(``livesqa.vad.stft_magnitude``) and runs only the rest of the graph, cut here with
``onnx.utils.extract_model`` at the STFT's magnitude (inputs: magnitudes, h, c; outputs: speech
probabilities, hn, cn). The weights are Silero VAD's, MIT (``LICENSE`` beside them), unchanged.
``tests/test_vad.py`` checks that both paths give the same probabilities.
"""

from pathlib import Path

import onnx
import onnx.utils

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "livesqa" / "assets" / "silero"
MAG = "/stft/Sqrt_output_0"


def main() -> None:
    out = ASSETS / "silero_vad_16k_sequence_tail.onnx"
    onnx.utils.extract_model(str(ASSETS / "silero_vad_16k_sequence.onnx"), str(out), [MAG, "h", "c"],
                             ["speech_probs", "hn", "cn"])
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    print(f"wrote {out} ({out.stat().st_size} bytes; inputs {[i.name for i in model.graph.input]})")


if __name__ == "__main__":
    main()
