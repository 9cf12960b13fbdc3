"""GPU latency of the released student and ours: eager fp32/fp16, torch.compile, CUDA graphs, TensorRT.

    PYTHONPATH=. python3 benchmarks/bench_gpu.py [--weights A.pt B.pt] [--sizes 512x640 1024x1280] [--repeats 50]

Network only (inputs already on the GPU), median of --repeats after warm-up, synchronised with
CUDA events; prints milliseconds and frames per second with the GPU's name. Modes that cannot run
here (TensorRT not installed, compile failure) are reported with the reason, not hidden.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from sage_core.backends import prepare_for_inference
from sage_core.checkpoint import load_model
from sage_core.options import DEFAULT_WEIGHTS

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "sage_official_student.pt"


def time_cuda(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def modes(module: torch.nn.Module, y: torch.Tensor, ir: torch.Tensor):
    """(name, callable or exception) for each way of running the network."""
    yield "eager fp32", lambda: module(y, ir)
    half, yh, irh = module.half(), y.half(), ir.half()
    yield "eager fp16", lambda: half(yh, irh)
    module.float()
    try:
        compiled = torch.compile(module, mode="max-autotune-no-cudagraphs")
        compiled(y, ir)
        yield "torch.compile", lambda: compiled(y, ir)
    except Exception as exc:  # noqa: BLE001 - a mode that fails is reported in the table, the others still run
        yield "torch.compile", exc
    try:
        static_y, static_ir = y.clone(), ir.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                module(static_y, static_ir)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            module(static_y, static_ir)
        yield "CUDA graph fp32", graph.replay
    except Exception as exc:  # noqa: BLE001 - a mode that fails is reported in the table, the others still run
        yield "CUDA graph fp32", exc
    try:
        import torch_tensorrt

        for precision in (torch.float, torch.half):
            engine = torch_tensorrt.compile(module, ir="dynamo", inputs=[y, ir], enabled_precisions={precision})
            yield f"TensorRT {'fp16' if precision == torch.half else 'fp32'}", lambda e=engine: e(y, ir)
    except Exception as exc:  # noqa: BLE001 - a mode that fails is reported in the table, the others still run
        yield "TensorRT", exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", type=Path,
                        default=[OFFICIAL, DEFAULT_WEIGHTS] if OFFICIAL.exists() else [DEFAULT_WEIGHTS])
    parser.add_argument("--sizes", nargs="+", default=["512x640", "1024x1280"], help="HEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: error: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda}")
    print(f"{'model':<30} {'size':>10} {'mode':<18} {'median ms':>10} {'fps':>8}")
    for weights in args.weights:
        module = prepare_for_inference(load_model(weights)[0]).cuda()
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            y = torch.rand(1, 1, height, width, device="cuda")
            ir = torch.rand(1, 1, height, width, device="cuda")
            with torch.inference_mode():
                for name, run in modes(module, y, ir):
                    if isinstance(run, Exception):
                        print(f"{weights.name:<30} {size:>10} {name:<18} not run: {str(run).splitlines()[0][:80]}")
                        continue
                    ms = time_cuda(run, args.repeats)
                    print(f"{weights.name:<30} {size:>10} {name:<18} {ms:>10.3f} {1000 / ms:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
