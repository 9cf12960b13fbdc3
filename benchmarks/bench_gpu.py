"""The GPU acceptance of every backend (``--acceptance``), or the network's latency in each GPU mode.

    python benchmarks/bench_gpu.py --acceptance                  # one table, < 8 minutes, installs nothing
    python benchmarks/bench_gpu.py [--weights A.pt B.pt] [--sizes 512x640 1024x1280] [--repeats 50]

``--acceptance`` builds every backend the machine has through the product's own loader, as the node would
(torch fp32 and fp16; TensorRT fp32 and fp16 when torch-tensorrt imports; ONNX Runtime's CUDA provider, and
its TensorRT provider fp32 and fp16, when onnxruntime-gpu is installed), each from scratch in a temporary
engine cache, and for each at every size (default 640x512 and 1280x1024) prints: the build (or load) time,
milliseconds per frame (median, inputs already on the GPU; ONNX Runtime copies through the host), and the
largest difference from eager fp32 PyTorch in grey levels on *different* random visible and thermal images.
Then the node's frame path (``build_pipeline`` with ``backend: auto``, what ``fusion_node`` runs: thermal
normalisation, alignment, colour, fusion) on a generated 16-bit scene, against the same path with eager fp32
torch. A backend the machine lacks is "not run" with the reason; one that is there but fails to build, or is
more than 2 grey levels from eager, is FAILED and the exit status is 1. Rows after 7 minutes are skipped.

Without ``--acceptance``: the network alone (eager fp32/fp16, torch.compile, a CUDA graph, our TensorRT
backend), median of ``--repeats`` after warm-up, synchronised with CUDA events.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sage_core.backends import OnnxRuntimeBackend, available, load_backend, parity, prepare_for_inference
from sage_core.backends.fingerprint import driver_version, library_version
from sage_core.backends.loading import LoadedBackend
from sage_core.backends.onnx_runtime import export_onnx
from sage_core.checkpoint import load_model
from sage_core.options import DEFAULT_WEIGHTS, InferenceOptions
from sage_core.synthetic import SyntheticScene

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "sage_official_student.pt"
TOLERANCE_GREY = 2.0
BUDGET_S = 7 * 60


def time_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``fn`` after 3 warm-up calls (synchronised on a GPU)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


@dataclass
class Row:
    backend: str
    size: str = "-"
    build_s: float | None = None
    ms: float | None = None
    grey: float | None = None
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.note.startswith("FAILED") or (self.grey is not None and self.grey > TOLERANCE_GREY)

    def line(self) -> str:
        def num(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)
        verdict = "FAILED: above 2 grey levels; " if self.grey is not None and self.grey > TOLERANCE_GREY else ""
        return (f"{self.backend:<28} {self.size:>10} {num(self.build_s, '.1f'):>8} {num(self.ms, '.3f'):>10} "
                f"{num(self.grey, '.2f'):>8}  {verdict}{self.note}")


def _ort_cuda_only(model, device: torch.device, folder: Path) -> LoadedBackend:
    """ONNX Runtime with its CUDA provider alone (the TensorRT provider left out)."""
    path = folder / "cuda_only.onnx"
    export_onnx(model, path)
    return LoadedBackend(OnnxRuntimeBackend(path, device, threads=1), None)


def candidates(weights: Path, model, device: torch.device, cache: Path) -> Iterator[tuple[str, str, Callable]]:
    """(row name, registry name for availability, build) for each backend configuration."""
    def options(**kw) -> InferenceOptions:
        return InferenceOptions(model_file_path=weights, device=str(device), engine_cache_dir=cache,
                                force_engine_update=True, **kw)

    yield "torch fp32", "torch", lambda: load_backend(options(backend="torch"))
    yield "torch fp16", "torch", lambda: load_backend(options(backend="torch", enable_fp16=True))
    for fp16 in (False, True):
        yield f"TensorRT {'fp16' if fp16 else 'fp32'}", "tensorrt", (
            lambda fp16=fp16: load_backend(options(backend="tensorrt", enable_fp16=fp16)))
    yield "ONNX Runtime CUDA fp32", "onnxruntime", lambda: _ort_cuda_only(model, device, cache)
    for fp16 in (False, True):
        yield f"ONNX Runtime auto {'fp16' if fp16 else 'fp32'}", "onnxruntime", (
            lambda fp16=fp16: load_backend(options(backend="onnxruntime", enable_fp16=fp16)))


def measure(name: str, build: Callable, model, sizes: list[tuple[int, int]], repeats: int,
            device: torch.device) -> list[Row]:
    started = time.perf_counter()
    try:
        loaded = build()
    except Exception as exc:  # noqa: BLE001 - a backend that fails is a row of the table, the others still run
        return [Row(name, note=f"FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")]
    build_s = time.perf_counter() - started
    backend = loaded.backend
    eager = prepare_for_inference(model).to(device)
    rows = []
    for index, (height, width) in enumerate(sizes):
        y, ir = parity.random_pair((height, width), torch.float32, device, seed=index)
        with torch.inference_mode():
            difference = (backend.run(y, ir).float() - eager(y, ir)).abs().max().item() * 255
            ms = time_ms(lambda y=y, ir=ir: backend.run(y, ir), repeats, device)
        rows.append(Row(name, f"{width}x{height}", build_s if index == 0 else None, ms, difference,
                        f"{backend.detail}" if index == 0 else ""))
    return rows


def node_frame_path(sizes: list[tuple[int, int]], repeats: int, device: torch.device, cache: Path) -> list[Row]:
    """The node's frame path (auto backend) against the same path with eager fp32 torch."""
    from sage_ros.parameters import from_values
    from sage_ros.stream.frame_path import build_pipeline

    def pipeline(backend: str):
        return build_pipeline(from_values({"device": str(device), "backend": backend, "engine_cache_dir": str(cache),
                                           "warmup": True}))

    try:
        node, reference = pipeline("auto"), pipeline("torch")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return [Row("node frame path (auto)", note=f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0]}")]
    rows = []
    for index, (height, width) in enumerate(sizes):
        frame = SyntheticScene(width, height, seed=index).frame(0.5)
        fused = node.fuse(frame.thermal_mono16, frame.visible)
        expected = reference.fuse(frame.thermal_mono16, frame.visible)
        grey = float(np.abs(fused.astype(int) - expected.astype(int)).max())
        ms = time_ms(lambda f=frame: node.fuse(f.thermal_mono16, f.visible), repeats, device)
        rows.append(Row("node frame path (auto)", f"{width}x{height}", None, ms, grey,
                        node.fuser.description if index == 0 else ""))
    if node.fuser.fallback:
        rows[0].note += f"; fell back: {node.fuser.fallback}"
    return rows


def header(device: torch.device) -> list[str]:
    lines = [f"torch {torch.__version__} (CUDA {torch.version.cuda}), torch-tensorrt "
             f"{library_version('torch_tensorrt') or 'not installed'}, tensorrt {library_version('tensorrt') or '-'}, "
             f"onnxruntime {library_version('onnxruntime') or 'not installed'}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.insert(0, f"{props.name}, compute capability {props.major}.{props.minor}, driver "
                        f"{driver_version() or 'unknown'}")
    return lines


def acceptance(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: error: no CUDA device (use --device cpu to try the script itself)", file=sys.stderr)
        return 2
    weights = args.weights[0]
    model = load_model(weights)[0]
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    started = time.perf_counter()
    print("\n".join(header(device)))
    print(f"acceptance of {weights.name} on {device}: y != ir (distinct random images), differences from eager fp32 "
          f"PyTorch in grey levels (tolerance {TOLERANCE_GREY:g}), ms per frame: median of {args.repeats}")
    print(f"{'backend':<28} {'W x H':>10} {'build s':>8} {'ms/frame':>10} {'grey lv':>8}  detail")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sage_acceptance_") as folder:
        cache = Path(folder)
        for name, registry_name, build in candidates(weights, model, device, cache):
            ok, why = available(registry_name, device)
            if time.perf_counter() - started > BUDGET_S:
                new = [Row(name, note="skipped: the 7-minute budget is spent")]
            elif not ok:
                new = [Row(name, note=f"not run: {why}")]
            else:
                new = measure(name, build, model, sizes, args.repeats, device)
            for row in new:
                print(row.line(), flush=True)
            rows += new
        for row in node_frame_path(sizes, args.repeats, device, cache):
            print(row.line(), flush=True)
            rows.append(row)
    failed = [row for row in rows if row.failed]
    print(f"{'FAILED' if failed else 'passed'}: {len(failed)} row(s) failed; {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def latency(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        print("bench_gpu: error: no CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print("\n".join(header(device)))
    print(f"{'model':<30} {'size':>10} {'mode':<18} {'median ms':>10} {'fps':>8}")
    for weights in args.weights:
        module = prepare_for_inference(load_model(weights)[0]).to(device)
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            y, ir = parity.random_pair((height, width), torch.float32, device)
            for name, run in modes(weights, module, y, ir):
                if isinstance(run, Exception):
                    print(f"{weights.name:<30} {size:>10} {name:<18} not run: {str(run).splitlines()[0][:80]}")
                    continue
                with torch.inference_mode():
                    ms = time_ms(run, args.repeats, device)
                print(f"{weights.name:<30} {size:>10} {name:<18} {ms:>10.3f} {1000 / ms:>8.1f}")
    return 0


def modes(weights: Path, module: torch.nn.Module, y: torch.Tensor, ir: torch.Tensor):
    """(name, callable or exception) for each way of running the network."""
    yield "eager fp32", lambda: module(y, ir)
    half, yh, irh = prepare_for_inference(load_model(weights)[0]).to(y.device).half(), y.half(), ir.half()
    yield "eager fp16", lambda: half(yh, irh)
    try:
        compiled = torch.compile(module, mode="max-autotune-no-cudagraphs")
        compiled(y, ir)
        yield "torch.compile", lambda: compiled(y, ir)
    except Exception as exc:  # noqa: BLE001 - a mode that fails is reported in the table, the others still run
        yield "torch.compile", exc
    for fp16 in (False, True):
        with tempfile.TemporaryDirectory() as cache:
            try:
                backend = load_backend(InferenceOptions(model_file_path=weights, device="cuda", backend="tensorrt",
                                                        enable_fp16=fp16, engine_cache_dir=cache)).backend
                yield f"TensorRT {'fp16' if fp16 else 'fp32'}", lambda b=backend: b.run(y, ir)
            except Exception as exc:  # noqa: BLE001 - reported in the table
                yield f"TensorRT {'fp16' if fp16 else 'fp32'}", exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acceptance", action="store_true", help="every backend against eager, one table")
    parser.add_argument("--weights", nargs="+", type=Path, default=None,
                        help="model files (acceptance: the first; default the shipped model)")
    parser.add_argument("--sizes", nargs="+", default=["512x640", "1024x1280"], help="HEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per size (default 30, latency 50)")
    parser.add_argument("--device", default="cuda", help="acceptance only: cpu tries the script without a GPU")
    args = parser.parse_args()
    if args.weights is None:
        args.weights = [DEFAULT_WEIGHTS] if args.acceptance or not OFFICIAL.exists() else [OFFICIAL, DEFAULT_WEIGHTS]
    args.repeats = args.repeats or (30 if args.acceptance else 50)
    return acceptance(args) if args.acceptance else latency(args)


if __name__ == "__main__":
    sys.exit(main())
