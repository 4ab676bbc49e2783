"""ONNX Runtime on the CPU, fp32 and static INT8, against the job's torch model: speed and agreement.

    python -m uv run --frozen python benchmarks/onnx_runtime.py --weights PATH [--images DIR] [--calibration 16]

The measurement behind the INT8 decision (docs/performance.md, ONNX Runtime and INT8): the fused model is
exported to ONNX (decoded boxes and scores, dynamic batch), quantized with ONNX Runtime's ``quantize_static``
(QDQ, per-channel int8 weights, uint8 activations calibrated on the first ``--calibration`` photos), and both ONNX
models run at the job's batch size with the job's own letterbox and NMS. Agreement is against the torch fp32
detections: share of boxes matched (same class, IoU >= 0.5) both ways and the mean IoU of matches. The job runs
fp32 on CPUs on ONNX Runtime (``--runtime auto``); INT8 is measured here only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from more_itertools import chunked

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support import image_paths  # noqa: E402
from tests.support.parity import agreement  # noqa: E402
from workers.decoding import prepare_image  # noqa: E402
from workers.detector import Detector, _decoded_output, _postprocess  # noqa: E402
from workers.frames import FrameBatch  # noqa: E402
from workers.letterbox import LetterboxSpec  # noqa: E402
from workers.onnx_runtime import OnnxForward, export_onnx  # noqa: E402
from workers.weights import load_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "coco-tiny" / "images")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--model", default="yolo_nas_s")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calibration", type=int, default=16, help="photos that calibrate the INT8 activations")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--fp32-nodes",
        metavar="TEXT",
        help="leave nodes whose name contains TEXT unquantized (e.g. heads: the detection heads)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "out" / "onnx_runtime.json")
    args = parser.parse_args()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    spec = LetterboxSpec()
    paths = image_paths(args.images)
    weights = load_weights(args.weights, args.model)
    detector = Detector.from_weights(args.model, weights, spec)
    batches = [
        FrameBatch.stack([prepare_image(p.read_bytes(), spec) for p in chunk])
        for chunk in chunked(paths, args.batch_size)
    ]
    keys = [[str(p) for p in chunk] for chunk in chunked(paths, args.batch_size)]

    def normalised(batch: FrameBatch) -> np.ndarray:
        images = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float()
        return ((images - detector._mean) / detector._std).contiguous().numpy()

    def run(forward) -> tuple[dict[str, np.ndarray], float]:
        found, seconds = {}, 0.0
        for batch, names in zip(batches, keys):
            inputs = normalised(batch)
            started = time.perf_counter()
            boxes, scores = forward(inputs)
            seconds += time.perf_counter() - started
            d = _postprocess(
                torch.as_tensor(boxes).float(), torch.as_tensor(scores).float(), batch, detector.thresholds
            )
            for i, name in enumerate(names):
                keep = d.frame == i
                found[name] = np.concatenate([d.boxes[keep], d.scores[keep, None], d.class_ids[keep, None]], axis=1)
        return found, len(paths) / seconds

    def torch_forward(inputs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            x = torch.from_numpy(inputs).contiguous(memory_format=torch.channels_last)
            return _decoded_output(detector.model(x))

    results: dict[str, dict[str, float]] = {}
    run(torch_forward)  # warms oneDNN up: time the second pass
    reference, rate = run(torch_forward)
    results["torch_fp32"] = {"frames_per_s": rate}

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32_path.write_bytes(export_onnx(args.model, weights, spec))

        class Calibration(CalibrationDataReader):
            def __init__(self) -> None:
                frames = [prepare_image(p.read_bytes(), spec) for p in paths[: args.calibration]]
                self.inputs = iter(normalised(FrameBatch.stack([f])) for f in frames)

            def get_next(self) -> dict[str, np.ndarray] | None:
                x = next(self.inputs, None)
                return None if x is None else {"x": x}

        import onnx

        kept = [
            node.name
            for node in onnx.load(str(fp32_path)).graph.node
            if args.fp32_nodes and args.fp32_nodes in node.name
        ]
        started = time.perf_counter()
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Calibration(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
        )
        quantize_s = time.perf_counter() - started
        for name, path in (("onnxruntime_fp32", fp32_path), ("onnxruntime_int8", int8_path)):
            forward = OnnxForward(path.read_bytes(), args.threads)

            def call(x, forward=forward):
                return forward(torch.from_numpy(x))

            run(call)  # warm-up, as above
            found, rate = run(call)
            matched, mean_iou = agreement(found, reference)
            back, _ = agreement(reference, found)
            results[name] = {"frames_per_s": rate, "matched": matched, "matched_back": back, "mean_iou": mean_iou}
        results["onnxruntime_int8"]["quantize_s"] = quantize_s

    print(
        f"{args.model}, batch {args.batch_size}, {args.threads} threads, {len(paths)} images; "
        f"agreement against torch fp32 (same class, IoU >= 0.5); nodes left in fp32: {len(kept)}"
    )
    print(f"{'model':<20}{'frames/s':>10}{'vs torch':>10}{'matched':>9}{'back':>7}{'mean IoU':>10}")
    base = results["torch_fp32"]["frames_per_s"]
    for name, r in results.items():
        rest = f"{r['matched']:>9.2f}{r['matched_back']:>7.2f}{r['mean_iou']:>10.3f}" if "matched" in r else ""
        print(f"{name:<20}{r['frames_per_s']:>10.2f}{r['frames_per_s'] / base:>9.2f}x{rest}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
