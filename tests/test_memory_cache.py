from __future__ import annotations

import threading

from lockd.memory_cache import BoundedCache


def test_least_recently_used_entries_leave_first_and_the_total_stays_bounded() -> None:
    cache = BoundedCache[str, bytes](100, sizeof=len)
    cache.put("keep", b"k" * 10)
    for n in range(30):
        assert cache.get("keep") is not None  # used every round, so never the coldest
        cache.put(f"e{n}", b"e" * 10)
        assert cache.size <= 100
    assert cache.get("keep") == b"k" * 10
    assert cache.get("e0") is None
    assert cache.get("e29") == b"e" * 10


def test_a_value_over_an_eighth_of_the_bound_is_not_kept_and_flushes_nothing() -> None:
    cache = BoundedCache[str, bytes](80, sizeof=len)
    cache.put("small", b"s" * 5)
    assert cache.put("huge", b"h" * 11) is False
    assert cache.get("huge") is None
    assert cache.get("small") == b"s" * 5


def test_entries_expire_after_their_time_to_live() -> None:
    now = [100.0]
    cache = BoundedCache[str, int](10, ttl=5.0, clock=lambda: now[0])
    cache.put("k", 1)
    now[0] = 104.9
    assert cache.get("k") == 1
    now[0] = 105.0
    assert cache.get("k") is None
    assert len(cache) == 0


def test_replacing_and_popping_keep_the_size_exact() -> None:
    cache = BoundedCache[str, bytes](1000, sizeof=len)
    cache.put("a", b"x" * 50)
    cache.put("a", b"x" * 20)
    assert cache.size == 20
    assert cache.pop("a") == b"x" * 20
    assert cache.size == 0
    cache.put("b", b"x")
    cache.clear()
    assert cache.size == 0 and cache.get("b") is None


def test_concurrent_writers_never_break_the_bound() -> None:
    cache = BoundedCache[int, bytes](500, sizeof=len)

    def write(base: int) -> None:
        for n in range(2000):
            cache.put(base + n, b"v" * (n % 40 + 1))
            cache.get(base + n // 2)

    threads = [threading.Thread(target=write, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0 < cache.size <= 500


def test_a_read_does_not_wait_for_a_writer_holding_the_lock() -> None:
    # A thread that holds the lock can lose the GIL inside it; readers waiting for it then made
    # a convoy. A hit is answered as it stands, and only its place in the LRU order is skipped.
    cache = BoundedCache[str, bytes](1000, sizeof=len)
    cache.put("a", b"x")
    cache.put("b", b"y")
    answers: list[bytes | None] = []
    with cache._lock:  # a writer in the middle of a put, as another thread would be
        reader = threading.Thread(
            target=lambda: answers.extend([cache.get("a"), cache.get("missing")]), daemon=True
        )
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive()
    assert answers == [b"x", None]
    # With the lock free again, a read marks recency as before: "b" is now the coldest.
    assert cache.get("a") == b"x"
    small = BoundedCache[str, bytes](2, sizeof=len)
    small.put("a", b"1")
    small.put("b", b"2")
    assert small.get("a") == b"1"
    small.put("c", b"3")
    assert small.get("b") is None and small.get("a") == b"1"


def test_an_expired_entry_replaced_meanwhile_is_not_dropped_by_the_late_reader() -> None:
    # The reader finds the old entry expired; before it takes the lock to drop it, a writer puts
    # a fresh value (here, from inside the reader's own look at the clock). The fresh value stays.
    now = [100.0]
    cache: BoundedCache[str, int]
    replaced = threading.Event()

    def clock() -> float:
        if now[0] > 105.0 and not replaced.is_set():
            replaced.set()
            now[0] = 106.0
            cache.put("k", 2)  # expires at 111
        return now[0]

    cache = BoundedCache[str, int](10, ttl=5.0, clock=clock)
    cache.put("k", 1)  # expires at 105
    now[0] = 105.5
    answers: list[int | None] = []
    reader = threading.Thread(target=lambda: answers.append(cache.get("k")), daemon=True)
    reader.start()
    reader.join(timeout=5)  # a reader holding the lock over the clock would never return
    assert not reader.is_alive() and answers == [None]
    assert cache.get("k") == 2 and len(cache) == 1
