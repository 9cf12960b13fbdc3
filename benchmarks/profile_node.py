"""Where the fusion node's time goes per frame: its callbacks and worker run in this process, profiled.

    python benchmarks/profile_node.py [--size 640x512] [--frames 60] [--top 25] [--backend auto]

A fusion node (default parameters, but ``lazy`` off: nothing subscribes here) in a context of its
own, with no executor: each pair's two messages, serialized, go through the node's subscription
callbacks, and the job they submit runs at once on this thread (one frame at a time), publishing as
usual. Prints the wall and CPU time per pair (CPU: the whole process, every
thread the backend and OpenCV keep busy), then cProfile's cumulative table (top entries) timed in process
CPU time (``--timer cpu``, the default: each entry is the CPU the machine spent while it ran, the numbers
that decide what fits on a small computer) or wall time. DDS delivery into the node is not included (see
bench_node.py for the end-to-end numbers); serialisation on publish is.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

from sage_core import inference_settings
from sage_core.cameras import Camera
from sage_ros.harness.dds import isolate_dds
from sage_ros.harness.pairs import synthetic_pairs
from sage_ros.harness.probe import Player


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x512", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--top", type=int, default=25)
    inference_settings.add_arguments(parser)  # the node's parameters of the same names
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu", help="the profile's clock")
    args = parser.parse_args()
    isolate_dds()
    import rclpy
    from rclpy.parameter import Parameter

    from sage_ros.fusion_node import FusionNode

    width, height = (int(v) for v in args.size.split("x"))
    context = rclpy.Context()
    rclpy.init(context=context)
    # lazy off: nobody subscribes here, and the node would otherwise (rightly) skip all the work.
    overrides = {**inference_settings.given(args), "lazy": False}
    node = FusionNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    node.worker.stop()
    node.worker.submit = _synchronously(node)  # each job fused and published here, under the profiler
    messages = Player.messages(synthetic_pairs(8, width, height, rate=30.0))
    for index in range(5):  # warm-up
        thermal, rgb = messages[index % len(messages)]
        _feed(node, thermal, rgb, index)
    started, started_cpu = time.perf_counter(), time.process_time()
    for index in range(args.frames):
        thermal, rgb = messages[index % len(messages)]
        _feed(node, thermal, rgb, 100 + index)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"{args.size}, {node.fuser.description}: {1000 * wall / args.frames:.2f} ms wall, "
          f"{1000 * cpu / args.frames:.2f} ms CPU per pair ({args.frames} pairs, published {node.stats.published})")
    profiler = cProfile.Profile(time.process_time if args.timer == "cpu" else time.perf_counter)
    profiler.enable()
    for index in range(args.frames):
        thermal, rgb = messages[index % len(messages)]
        _feed(node, thermal, rgb, 1000 + index)
    profiler.disable()
    print(f"profile timed in {args.timer} time; divide by {args.frames} for per-pair numbers")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
    node.destroy_node()
    rclpy.shutdown(context=context)
    return 0


def _synchronously(node):
    def run(job) -> None:
        publish = node._process(job)
        if publish is not None:
            publish()
    return run


def _feed(node, thermal, rgb, index: int) -> None:
    """Both messages, serialized as DDS hands them to the node's raw subscriptions, into its callbacks."""
    from rclpy.serialization import serialize_message

    stamp = time.time_ns()  # real time: the node's stamp guard compares stamps with its clock
    for msg, camera, offset in ((rgb, Camera.RGB, 0), (thermal, Camera.THERMAL, 3_000_000)):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp + offset, 1_000_000_000)
        node.inputs._on_raw(camera, serialize_message(msg))


if __name__ == "__main__":
    sys.exit(main())
