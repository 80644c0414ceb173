"""Round by round: every system once per round, in an order that rotates, so that a machine
slowing down (or speeding up) over the run weighs on every system alike; then the table."""

from __future__ import annotations

from collections.abc import Callable

from workflows.operations.bench_peers.billflow_peer import AsyncChainSystem, BillflowSystem
from workflows.operations.bench_peers.dbos_peer import DbosSystem
from workflows.operations.bench_peers.procrastinate_peer import ProcrastinateSystem
from workflows.operations.bench_peers.work import Figures, System, latency_percentiles, summary

SYSTEMS: dict[str, type[System]] = {
    system.name: system
    for system in (BillflowSystem, AsyncChainSystem, ProcrastinateSystem, DbosSystem)
}
NOT_INSTALLED = "not installed (pip install -e .[bench])"


def run_rounds(
    systems: list[System], rounds: int, measure: Callable[[System], Figures], say: Callable
) -> dict[str, list[Figures]]:
    results: dict[str, list[Figures]] = {system.name: [] for system in systems}
    for number in range(rounds):
        shift = number % len(systems)
        for system in systems[shift:] + systems[:shift]:
            figures = measure(system)
            results[system.name].append(figures)
            say(
                f"round {number + 1}/{rounds} {system.name}: "
                f"{figures.steps_per_second:.0f} steps/s burst, "
                f"paced p95 {latency_percentiles([figures])[1] * 1000:.0f} ms"
            )
    return results


def table(results: dict[str, list[Figures]], skipped: list[str], rate: float) -> list[str]:
    lines = [
        f"{'system':<14} {'rounds':>6}  {'burst steps/s min / median / max':>32}  "
        f"{'CPU ms/event':>12}  {f'paced at {rate:g}/s p50 / p95':>24}"
    ]
    for name, figures in results.items():
        low, mid, high = summary([f.steps_per_second for f in figures])
        cpu = [f.cpu_ms_per_event for f in figures if f.cpu_ms_per_event is not None]
        cpu_text = f"{summary(cpu)[1]:.1f}" if cpu else "-"
        p50, p95 = latency_percentiles(figures)
        lines.append(
            f"{name:<14} {len(figures):>6}  {f'{low:.0f} / {mid:.0f} / {high:.0f}':>32}  "
            f"{cpu_text:>12}  {f'{p50 * 1000:.0f} / {p95 * 1000:.0f} ms':>24}"
        )
    for name in skipped:
        lines.append(f"{name:<14} {NOT_INSTALLED}")
    lines += _ratios(results)
    return lines


def _ratios(results: dict[str, list[Figures]]) -> list[str]:
    billflow = results.get(BillflowSystem.name)
    peers = {name: figures for name, figures in results.items() if name != BillflowSystem.name}
    if not billflow or not peers:
        return ["billflow / best peer: needs billflow and at least one peer measured"]
    median_rate = {name: summary([f.steps_per_second for f in fs])[1] for name, fs in peers.items()}
    p95 = {name: latency_percentiles(fs)[1] for name, fs in peers.items()}
    fastest = max(median_rate, key=median_rate.get)
    quickest = min(p95, key=p95.get)
    own_rate = summary([f.steps_per_second for f in billflow])[1]
    own_p95 = latency_percentiles(billflow)[1]
    return [
        f"billflow / best peer, burst steps/s (median): {own_rate / median_rate[fastest]:.2f}x "
        f"against {fastest} (target >= 1.5x)",
        f"billflow / best peer, paced p95: {own_p95 / p95[quickest]:.2f}x "
        f"against {quickest} (target <= 1.5x)",
    ]
