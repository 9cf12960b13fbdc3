"""The inference worker: newest job wins, replaced jobs are counted, and the allocator keeps freed memory."""

from __future__ import annotations

import platform
import threading
import time

from sage_ros.harness.probe import wait_for
from sage_ros.stream.frames import Job
from sage_ros.stream.memory import keep_freed_memory
from sage_ros.stream.worker import InferenceWorker


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


def test_two_threads_overlap_frames_and_publish_in_the_order_the_frames_were_taken():
    first_running, release_first, published, all_done = threading.Event(), threading.Event(), [], threading.Event()
    second_done = threading.Event()

    def process(job: Job):
        if job is first:
            first_running.set()
            assert release_first.wait(5)  # the first frame is slow: the second finishes before it
        else:
            second_done.set()

        def publish():
            published.append(job)
            if len(published) == 2:
                all_done.set()
        return publish

    worker = InferenceWorker(process, lambda: None, threads=2)
    assert worker.threads == 2
    worker.start()
    first, second = Job({}), Job({})
    worker.submit(first)
    assert first_running.wait(5)
    worker.submit(second)
    assert second_done.wait(5)  # fused alongside the first, not after it
    assert published == []  # but not published before it
    release_first.set()
    assert all_done.wait(5)
    worker.stop()
    assert published == [first, second]


def test_a_failing_process_does_not_stop_later_frames_from_publishing():
    published, done = [], threading.Event()

    def process(job: Job):
        if job is bad:
            raise RuntimeError("boom")
        return lambda: (published.append(job), done.set())

    worker = InferenceWorker(process, lambda: None, threads=2)
    worker.start()
    bad, good = Job({}), Job({})
    worker.submit(bad)
    time.sleep(0.05)
    worker.submit(good)
    assert done.wait(5)
    worker.stop()
    assert published == [good]


def test_jobs_that_arrive_together_are_all_taken_while_threads_are_free():
    release, processed, dropped = threading.Event(), [], []
    lock = threading.Lock()

    def process(job: Job) -> None:
        release.wait(5)
        with lock:
            processed.append(job)

    worker = InferenceWorker(process, lambda: dropped.append(1), threads=2)
    worker.start()
    assert wait_for(lambda: worker._waiting == 2, 5)  # both threads are waiting for work
    a, b, c, d = Job({}), Job({}), Job({}), Job({})
    worker.submit(a)  # one message decided two pairs: they arrive back to back, two threads are free
    worker.submit(b)
    assert wait_for(lambda: worker._waiting == 0 and not worker._pending, 5)  # each thread took one
    worker.submit(c)  # every thread busy: one place, and the newest takes it
    worker.submit(d)
    release.set()
    assert wait_for(lambda: len(processed) == 3, 5)
    worker.stop()
    assert sorted(map(id, processed)) == sorted(map(id, (a, b, d))) and len(dropped) == 1
