"""Tables (Markdown), the targets of issue 8, and the plot of a run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Issue 8, point 4.
CPU_RATIO_TARGET = 1.5
P99_TARGET_MS = 75.0
P99_AT = (1000, 20)
IDLE_TARGET = 20_000
KIB_TARGET = 20.0
TIMES = "\u00d7"
NONE = "\u2013"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return NONE
    return f"{a / b:.2f}{TIMES}"


def ceiling_of(results: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any] | None:
    for other in results["cells"]:
        if other["target"] == "ceiling" and (other["n"], other["rate"]) == (
            cell["n"],
            cell["rate"],
        ):
            return other
    return None


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Run `{meta.get('name', '')}` of {meta['date']}: {meta['cpu']}, {meta['cpus']} CPUs, "
        f"{meta['memory_mib']} MiB, Linux {meta['kernel']}, Python {meta['python']}, "
        f"{meta['database']}, {meta.get('server', meta['commit'])}; {meta['pinning']}; "
        f"permessage-deflate {'negotiated' if meta['permessage_deflate'] else 'off'}; "
        f"{meta['duration_s']} s per cell; load average {_load(meta)}.",
        "",
        "| target | nodes | N | R/s | webhooks ok/sent | expected | lost | dup | resync "
        "| other frames "
        "| p50 ms | p95 ms | p99 ms "
        f"| max ms | deliveries/s | server CPU % | µs/delivery | µs {TIMES}ceiling | µs/frame "
        f"| p99 {TIMES}ceiling "
        "| generator CPU % | webhook p50/p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for cell in results["cells"]:
        ceiling = ceiling_of(results, cell) if cell["target"] != "ceiling" else None
        response = cell["response"]
        lines.append(
            "| "
            + " | ".join(
                [
                    cell["target"],
                    str(cell["nodes"]),
                    str(cell["n"]),
                    str(cell["rate"]),
                    f"{cell['messages_ok']}/{cell['messages_sent']}",
                    str(cell["expected"]),
                    str(cell["lost"]),
                    str(cell["duplicated"]),
                    str(cell["resyncs"]),
                    str(cell.get("other_frames", NONE)),
                    _fmt(cell["p50_ms"]),
                    _fmt(cell["p95_ms"]),
                    _fmt(cell["p99_ms"]),
                    _fmt(cell["max_ms"]),
                    _fmt(cell["deliveries_per_s"], 0),
                    _fmt(cell["server_cpu_pct"], 0)
                    + (" (sat.)" if cell["server_saturated"] else "")
                    + (
                        f" ({cell['server_cpu_pct_before']:.0f}% before)"
                        if cell.get("server_cpu_pct_before", 0) >= 20
                        else ""
                    ),
                    _fmt(cell["us_per_delivery"]),
                    _ratio(cell["us_per_delivery"], ceiling and ceiling["us_per_delivery"]),
                    _fmt(cell.get("us_per_frame")),
                    _ratio(cell["p99_ms"], ceiling and ceiling["p99_ms"]),
                    "/".join(_fmt(c, 0) for c in cell["generator_cpu_pct"])
                    + (" (sat.)" if cell["generator_saturated"] else ""),
                    f"{_fmt(response['p50_ms'])}/{_fmt(response['p99_ms'])}",
                ]
            )
            + " |"
        )
    lines += [
        "",
        "| idle connections | held | attempted | KiB per connection | RSS before → after MiB "
        f"| KiB {TIMES}ceiling | stopped by |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    ceiling_idle = next((i for i in results["idle"] if i["target"] == "ceiling"), None)
    for idle in results["idle"]:
        ratio = (
            _ratio(idle["kib_per_conn"], ceiling_idle["kib_per_conn"])
            if ceiling_idle and idle is not ceiling_idle
            else NONE
        )
        lines.append(
            f"| {idle['target']} | {idle['connections']} | {idle['attempted']} "
            f"| {idle['kib_per_conn']} | {idle['base_rss_mib']} → {idle['rss_mib']} | {ratio} "
            f"| {idle['stopped_by']} |"
        )
    lines += [
        "",
        "*lost*: expected deliveries that had not arrived when the cell ended (10 s after the "
        "last webhook answer at most): at a saturated load that includes late ones; *resync*: "
        "clients told to resync because 512 frames were waiting for them (Switchboard's drops).",
        "",
        "Targets (issue 8, point 4):",
        "",
    ]
    lines += [f"- {line}" for line in targets(results)]
    profiled = [c for c in results["cells"] if "profile" in c]
    headline = [c for c in profiled if (c["n"], c["rate"], c["nodes"]) == (*P99_AT, 1)]
    if profiled:
        lines += ["", *profile_lines((headline or profiled)[0])]
    return "\n".join(lines) + "\n"


# Frames every stack of the process has: not where the time goes.
_PLUMBING = (
    "threading.py",
    "runpy",
    "asyncio/runners.py",
    "server/__main__.py",
    "uvicorn/server.py",
    "uvicorn/main.py",
    "uvicorn/_compat.py",
    "anyio/_backends/_asyncio.py",
    "asyncio/events.py",
)


def profile_lines(cell: dict[str, Any]) -> list[str]:
    profile = cell["profile"]
    inclusive = [(f, p) for f, p in profile["inclusive"] if not any(x in f for x in _PLUMBING)]
    lines = [
        f"Where the server's time went ({cell['target']}, {cell['nodes']} node(s), "
        f"N={cell['n']}, R={cell['rate']}; py-spy --gil: share of the samples in which a "
        "thread held the GIL, "
        f"`bench/results/{profile['file']}`):",
        "",
        "| on the stack | % | at the top (self) | % |",
        "|---|--:|---|--:|",
    ]
    own = profile["self"]
    for k in range(max(len(inclusive[:15]), len(own[:15]))):
        left = inclusive[k] if k < len(inclusive) else ("", "")
        right = own[k] if k < len(own) else ("", "")
        lines.append(f"| `{left[0]}` | {left[1]} | `{right[0]}` | {right[1]} |")
    return lines


def _load(meta: dict[str, Any]) -> str:
    start = meta.get("load_average_at_start") or []
    end = meta.get("load_average_at_end") or []
    parts = []
    if start:
        parts.append(f"{start[0]:.1f} at start")
    if end:
        parts.append(f"{end[0]:.1f} at end")
    return ", ".join(parts) or "unknown"


def targets(results: dict[str, Any]) -> list[str]:
    out = []
    sb = [c for c in results["cells"] if c["target"] == "switchboard"]
    ratios = []
    for cell in sb:
        ceiling = ceiling_of(results, cell)
        if ceiling and cell["us_per_delivery"] and ceiling["us_per_delivery"]:
            ratios.append((cell["us_per_delivery"] / ceiling["us_per_delivery"], cell, ceiling))
    if ratios:
        worst = max(ratios, key=lambda r: r[0])
        met = all(r[0] <= CPU_RATIO_TARGET for r in ratios)
        out.append(
            f"CPU per delivery ≤ {CPU_RATIO_TARGET}{TIMES} the ceiling: "
            f"**{'met' if met else 'not met'}** "
            f"— worst {worst[0]:.2f}{TIMES} ({worst[1]['us_per_delivery']} vs "
            f"{worst[2]['us_per_delivery']} µs at {worst[1]['nodes']} node(s), "
            f"N={worst[1]['n']}, R={worst[1]['rate']})."
        )
    at = [c for c in sb if (c["n"], c["rate"]) == P99_AT and c["nodes"] == 1]
    if at:
        cell = at[0]
        met = cell["p99_ms"] is not None and cell["p99_ms"] <= P99_TARGET_MS and cell["lost"] == 0
        out.append(
            f"p99 ingest→delivery ≤ {P99_TARGET_MS:.0f} ms at N={P99_AT[0]}, R={P99_AT[1]} "
            f"({results['meta']['database']}): **{'met' if met else 'not met'}** — "
            f"{cell['p99_ms']} ms (lost {cell['lost']})."
        )
    idle = next((i for i in results["idle"] if i["target"] == "switchboard"), None)
    if idle:
        enough = idle["connections"] >= IDLE_TARGET
        small = idle["kib_per_conn"] <= KIB_TARGET
        measured = f"{idle['connections']} held at {idle['kib_per_conn']} KiB each"
        if not enough:
            measured += (
                f" (only {idle['attempted']} attempted in this run)"
                if idle["attempted"] < IDLE_TARGET
                else f" (the ramp stopped: {idle['stopped_by']})"
            )
        if idle["attempted"] < IDLE_TARGET:
            verdict = "met by extrapolation" if small else "not met"
        else:
            verdict = "met" if enough and small else "not met"
        out.append(
            f"≥ {IDLE_TARGET:,} idle connections on one node at ≤ {KIB_TARGET:.0f} KiB each: "
            f"**{verdict}** — {measured}; {IDLE_TARGET:,} would need about "
            f"{idle['base_rss_mib'] + IDLE_TARGET * idle['kib_per_conn'] / 1024:.0f} MiB."
        )
    sustained = [
        c
        for c in results["cells"]
        if c["target"] == "ceiling"
        and c["lost"] == 0
        and c["duplicated"] == 0
        and not c["server_saturated"]
    ]
    failing = [
        c
        for c in sb
        if any((c["n"], c["rate"]) == (s["n"], s["rate"]) for s in sustained)
        and (c["lost"] or c["duplicated"])
    ]
    if sustained:
        out.append(
            "0 lost and 0 duplicated wherever the ceiling keeps up "
            f"({len(sustained)} load(s)): **{'met' if not failing else 'not met'}**"
            + (
                " — "
                + "; ".join(
                    f"{c['nodes']} node(s) N={c['n']} R={c['rate']}: lost {c['lost']}, "
                    f"dup {c['duplicated']}"
                    for c in failing
                )
                if failing
                else ""
            )
            + "."
        )
    return out


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """p99 latency and server CPU per delivery against N, one line per target and rate."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    except ImportError:
        return None
    series: dict[tuple[str, int], dict[int, list[tuple[int, dict[str, Any]]]]] = {}
    for cell in results["cells"]:
        key = (cell["target"], cell["nodes"])
        series.setdefault(key, {}).setdefault(cell["rate"], []).append((cell["n"], cell))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"switchboard": "-", "ceiling": ":"}
    markers = ["o", "s", "^", "D", "v"]
    rates = sorted({c["rate"] for c in results["cells"]})
    colours = {
        ("switchboard", 1): "tab:blue",
        ("switchboard", 2): "tab:orange",
        ("ceiling", 1): "tab:green",
    }
    for (target, nodes), by_rate in sorted(series.items()):
        for rate, points in sorted(by_rate.items()):
            points.sort(key=lambda p: p[0])
            ns = [n for n, _ in points]
            label = f"{target}, {nodes} node{'s' if nodes > 1 else ''}, R={rate}/s"
            kwargs = {
                "linestyle": styles.get(target, "-"),
                "marker": markers[rates.index(rate) % len(markers)],
                "color": colours.get((target, nodes), "tab:gray"),
                "label": label,
            }
            left.plot(ns, [c["p99_ms"] for _, c in points], **kwargs)  # type: ignore[arg-type]
            right.plot(ns, [c["us_per_delivery"] for _, c in points], **kwargs)  # type: ignore[arg-type]
    left.axhline(P99_TARGET_MS, color="red", linewidth=0.8, linestyle="--", label="target 75 ms")
    for axis, title, unit in (
        (left, "p99 ingest → delivery", "ms (log)"),
        (right, "server CPU per delivery", "µs (log)"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("N connected agents (log)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        for ticks in (axis.xaxis, axis.yaxis):
            ticks.set_major_formatter(ScalarFormatter())
            ticks.set_minor_formatter(NullFormatter())
    left.legend(fontsize=7)
    meta = results["meta"]
    fig.suptitle(
        f"Switchboard vs ceiling — {meta['cpu']}, server pinned to one CPU, {meta['database']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    """`python -m bench.report bench/results/full.json`: the table and plot again."""
    import json
    import sys

    path = Path(sys.argv[1])
    results = json.loads(path.read_text())
    table = markdown(results)
    path.with_suffix(".md").write_text(table)
    plot(results, path.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
