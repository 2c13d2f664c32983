"""A forked child cannot use its parent's region; threads read one region
at once."""
import os
import threading

import numpy
import pytest

import strata
from conftest import sample_layers


def run_in_child(body):
    """Runs body() in a fork() child; returns the child's exit code (body's
    return value, 99 for an unexpected exception)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), status
    return os.WEXITSTATUS(status)


def test_fork_child_gets_a_clear_error(region):
    layer = region[17]
    parent = os.getpid()

    def child():
        failures = 0
        for use in (lambda: region[17], lambda: layer.size,
                    lambda: memoryview(layer), lambda: len(region),
                    lambda: region.close(), lambda: layer.__dlpack__()):
            try:
                use()
            except strata.Error as e:
                msg = str(e)
                if "fork" not in msg or str(parent) not in msg:
                    return 2
                failures += 1
        return 10 + failures

    assert run_in_child(child) == 16
    # The parent's region is untouched.
    assert bytes(layer).startswith(b"section seventeen")
    region.close()


def test_fork_child_opens_its_own(region_path):
    def child():
        with strata.Region(region_path) as r:
            return 0 if bytes(r["three"]) == b"three" else 1

    assert run_in_child(child) == 0


def test_threads_read_one_region_at_once(region):
    expected = {layer["id"]: layer["content"] for layer in sample_layers()}
    errors = []
    start = threading.Barrier(8)

    def reader(n):
        try:
            start.wait()
            for _ in range(200):
                for id, content in expected.items():
                    layer = region[id]
                    if bytes(layer) != content or layer.id != id:
                        errors.append((n, id))
                    a = numpy.frombuffer(layer, dtype=numpy.uint8)
                    if a.size != len(content):
                        errors.append((n, id, "size"))
                if n % 2:
                    region.verify()  # releases the GIL while it reads
                if [layer.id for layer in region] != sorted(expected):
                    errors.append((n, "order"))
        except Exception as e:  # reported below, not lost in the thread
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    region.close()


def test_close_during_verify_is_refused_or_waits(region):
    """verify() counts as an export while it runs without the GIL: a close()
    from another thread either raises BufferError (verify still running) or
    succeeds after it; the process never touches an unmapped file."""
    results = []

    def verifier():
        try:
            for _ in range(50):
                region.verify()
            results.append("done")
        except strata.Error as e:  # the region was closed between calls
            results.append("closed" if "closed" in str(e) else repr(e))

    t = threading.Thread(target=verifier)
    t.start()
    while True:
        try:
            region.close()
            break
        except BufferError:
            pass
    t.join()
    assert results in (["done"], ["closed"])
