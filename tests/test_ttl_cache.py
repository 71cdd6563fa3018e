"""The small expiring cache behind each node's copy of its integrations' settings."""

from __future__ import annotations

from server.state.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_its_ttl_and_no_longer() -> None:
    clock = Clock()
    cache: TtlCache[int, str] = TtlCache(ttl=2.0, size=10, clock=clock)
    cache.put(1, "one")
    clock.now += 1.999
    assert cache.get(1) == "one"
    clock.now += 0.001
    assert cache.get(1) is None
    assert len(cache) == 0


def test_putting_again_renews_and_forgetting_drops() -> None:
    clock = Clock()
    cache: TtlCache[int, str] = TtlCache(ttl=2.0, size=10, clock=clock)
    cache.put(1, "old")
    clock.now += 1.5
    cache.put(1, "new")
    clock.now += 1.5
    assert cache.get(1) == "new"
    cache.forget(1)
    cache.forget(2)  # unknown keys are fine
    assert cache.get(1) is None


def test_it_never_holds_more_than_its_size_and_drops_the_oldest() -> None:
    cache: TtlCache[int, int] = TtlCache(ttl=60.0, size=3, clock=Clock())
    for key in range(5):
        cache.put(key, key * 10)
    assert len(cache) == 3
    assert [cache.get(k) for k in range(5)] == [None, None, 20, 30, 40]
    cache.put(2, 21)  # renewed: now the newest, so 3 goes next
    cache.put(5, 50)
    assert [cache.get(k) for k in (2, 3, 4, 5)] == [21, None, 40, 50]
