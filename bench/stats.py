"""Latency histograms that merge across processes: microseconds to three significant digits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def bucket(us: int) -> int:
    """Exact below 1 ms; above, rounded down to three significant digits (under 1% error)."""
    if us < 1000:
        return max(us, 0)
    scale = 10 ** (len(str(us)) - 3)
    return (us // scale) * scale


def add(hist: dict[int, int], us: int) -> None:
    key = bucket(us)
    hist[key] = hist.get(key, 0) + 1


def merge(hists: Iterable[Mapping[int | str, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in hists:
        for key, count in hist.items():
            out[int(key)] = out.get(int(key), 0) + count
    return out


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) in microseconds; None for an empty histogram."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, round(q / 100 * total))
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return float(key)
    return float(max(hist))


def summary_ms(values_us: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds of a list of microsecond values."""
    hist: dict[int, int] = {}
    top = 0.0
    for value in values_us:
        add(hist, int(value))
        top = max(top, value)
    out: dict[str, float | None] = {}
    for q in (50, 95, 99):
        p = percentile(hist, q)
        out[f"p{q}_ms"] = None if p is None else round(p / 1000, 3)
    out["max_ms"] = round(top / 1000, 3) if hist else None
    return out
