"""The inference worker: newest job wins, replaced jobs are counted, and the allocator keeps freed memory."""

from __future__ import annotations

import platform
import threading

from sage_ros.worker import InferenceWorker, Job, keep_freed_memory


def test_a_newer_job_replaces_the_pending_one_and_the_replaced_one_is_counted():
    started, release, done, processed, dropped = threading.Event(), threading.Event(), threading.Event(), [], []

    def process(job: Job) -> None:
        started.set()
        release.wait(5)
        processed.append(job)
        if len(processed) == 2:
            done.set()

    worker = InferenceWorker(process, lambda: dropped.append(1))
    worker.start()
    first, second, third = Job({}), Job({}), Job({})
    worker.submit(first)
    assert started.wait(5)  # the first is running: the next two compete for the one pending place
    worker.submit(second)
    worker.submit(third)
    release.set()
    assert done.wait(5)
    worker.stop()
    assert processed == [first, third] and len(dropped) == 1


def test_the_allocator_keeps_freed_memory_on_glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return  # other allocators keep their own defaults (keep_freed_memory says False there)
    assert keep_freed_memory()
