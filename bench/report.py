"""results.json as the Markdown table the README's performance section shows."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["scenarios"]
    rows: list[tuple[str, str, str, str]] = []

    sat = s.get("1-saturation", {})
    for name, r in sat.items():
        if not isinstance(r, dict):
            continue
        ok = r["ratio"] >= 0.95 and not any(r["refused"].values())
        ok = ok and r["max_calls_in_a_60s_window"] <= r["rate_per_minute"]
        rows.append(
            (
                f"1{name[0]} saturation, {r['binding_limit']}-bound: {r['jobs']} jobs of "
                f"{r['pages_per_job'][0]}-{r['pages_per_job'][1]} pages ({r['calls']} calls); "
                f"rate {r['rate_per_minute']}/min, {r['concurrency']} in flight, latency "
                f"median {_fmt(r['latency_model_s']['median'])} s; time x{_fmt(r['time_scale'])}",
                f"**{r['ratio']:.3f}** of the bound ({_fmt(r['achieved_per_minute'])} / "
                f"{_fmt(r['bound_per_minute'])} calls/min; first-to-last call "
                f"{r['ratio_first_to_last_call']:.3f}); 40202/40209: "
                f"{r['refused']['40202']}/{r['refused']['40209']}; busiest 60 s window "
                f"{r['max_calls_in_a_60s_window']} calls",
                ">= 0.95, no refusal, no window over the rate",
                _goal(ok),
            )
        )

    peer = s.get("2-peers")
    if peer:
        parts = []
        for name, c in peer["contenders"].items():
            if name == "intersect-batch":
                continue
            if "skipped" in c:
                parts.append(f"{name}: skipped ({c['skipped']})")
            else:
                parts.append(f"{name}: **{c['wall_ratio_vs_intersect_batch']:.1f}x** slower")
        ours = peer["contenders"]["intersect-batch"]["wall_s"]
        rows.append(
            (
                f"2 peers: {peer['jobs']} jobs, {peer['calls']} calls; latency median "
                f"{_fmt(peer['latency_model_s']['median'])} s, time x{_fmt(peer['time_scale'])}",
                f"intersect-batch {ours:.2f} s wall; " + "; ".join(parts),
                "wall-time ratio (higher: we are faster)",
                "-",
            )
        )

    cpu = s.get("3-cpu-per-item")
    if cpu:
        p = cpu["paths"]
        ours = p["intersect-batch"]
        parts = [
            f"ours {ours['us_cpu_per_item']:.1f} µs/item, {_fmt(ours['mb_per_cpu_s'])} MB/s"
            f" (without fsync {p['intersect-batch-without-fsync']['us_cpu_per_item']:.1f})"
        ]
        ok = True
        for name, goal in (("stdlib-json", 3.0), ("dataforseo-client-pydantic", 10.0)):
            r = p[name]
            if "skipped" in r:
                parts.append(f"{name}: skipped")
                continue
            parts.append(
                f"{name} {r['us_cpu_per_item']:.1f} µs/item, {_fmt(r['mb_per_cpu_s'])} MB/s"
                f" = **{r['cpu_ratio_vs_intersect_batch']:.1f}x** ours"
            )
            ok = ok and r["cpu_ratio_vs_intersect_batch"] >= goal
        rows.append(
            (
                f"3 CPU per item: {cpu['pages']} recorded pages x {cpu['items_per_page']} items"
                f" (~{cpu['bytes_per_item']} B/item)",
                "; ".join(parts),
                ">= 3x less than json, >= 10x less than pydantic",
                _goal(ok),
            )
        )

    mem = s.get("4-memory")
    if mem:
        ok = mem["rss_ratio_large_vs_small"] <= 1.2 and mem["large"]["peak_rss_mb"] < 150
        rows.append(
            (
                f"4 peak RSS of the CLI: one job of {mem['small']['items']:,} vs "
                f"{mem['large']['items']:,} items",
                f"{mem['small']['peak_rss_mb']:.1f} MB vs {mem['large']['peak_rss_mb']:.1f} MB"
                f" = **{mem['rss_ratio_large_vs_small']:.2f}x**",
                "within 1.2x, < 150 MB",
                _goal(ok),
            )
        )

    many = s.get("5-many-jobs")
    if many:
        per_job = ", ".join(f"{r['jobs']}: {r['ms_per_job']:.1f} ms" for r in many["runs"].values())
        ok = many["growth_per_job"] <= 1.2
        rows.append(
            (
                "5 many one-page jobs at a high rate: wall time per job",
                f"{per_job}; growth **{many['growth_per_job']:.2f}x** (largest / middle count)",
                "flat (<= 1.2x)",
                _goal(ok),
            )
        )

    res = s.get("6-resume")
    if res:
        bound = res["concurrency"] + res["pages_in_memory"]
        ok = res["resume_exit_code"] == 0 and res["pages_refetched"] <= bound
        rows.append(
            (
                f"6 resume: kill -9 after {res['killed_after_calls']} of "
                f"{res['calls_uninterrupted']} calls (seed {res['seed']}), run again",
                f"pages re-fetched **{res['pages_refetched']}**; calls in flight at the "
                f"emulator at the kill {res['calls_in_flight_at_kill']}; in-flight limit "
                f"{res['concurrency']} + writer queue {res['pages_in_memory']}; resumed run exit "
                f"{res['resume_exit_code']}",
                "re-fetched <= the in-flight limit + the pages waiting for the writer",
                _goal(ok),
            )
        )

    week = s.get("7-nights")
    if week:
        ok = week["incremental_over_full"] <= 0.10
        modes = "".join("F" if row["mode"] == "full" else "i" for row in week["nights"])
        missed = week["missed_by_incremental"]
        rows.append(
            (
                f"7 a week of nights ({modes}): one job of {week['size']:,} pages, "
                f"{week['page_size']} a call, about 1 % new a day, refresh: incremental",
                f"full night {week['full_cost_usd']:.4f} USD; incremental nights "
                f"{week['incremental_mean_cost_usd']:.4f} USD on average, the dearest "
                f"**{week['incremental_over_full']:.3f}** of the full night"
                + ("" if missed is None else f"; missed by incremental: {missed} pages"),
                "<= 0.10 of a full night",
                _goal(ok),
            )
        )

    big = s.get("8-scale")
    if big:
        mem, stop = big["memory"], big["stop"]
        per_job = ", ".join(
            f"{r['jobs']:,} jobs: {r['peak_rss_mb']:.0f} MB = {r['kb_per_job']:.1f} KB/job"
            for r in mem.values()
        )
        # Per job at a small count is mostly the process's own ~47 MB; what one more job
        # costs is the figure that decides 20,000 jobs (the README's scale section).
        ok = big["marginal_kb_per_job"] < 10
        rows.append(
            (
                "8a many one-page jobs: peak RSS of the CLI per job, at two counts",
                f"{per_job}; one job more: **{big['marginal_kb_per_job']:.1f} KB**",
                "one job more < 10 KB",
                _goal(ok),
            )
        )
        ok = (
            stop["stop_s"] <= stop["grace_s"] + 5
            and stop["files_of_jobs_not_started"] == 0
            and stop["exit_code"] == 143
        )
        rows.append(
            (
                f"8b SIGTERM {stop['signal_after_first_call_s']:g} s into a night of "
                f"{stop['jobs']:,} jobs, --grace {stop['grace_s']}",
                f"start-up {stop['startup_s']:.1f} s; ended **{stop['stop_s']:.1f} s** after "
                f"the signal; {stop['records_after_signal']} records after it; "
                f"{stop['not_started']:,} jobs not started, "
                f"{stop['files_of_jobs_not_started']} files of theirs",
                "grace + 5 s, no file for a job not started",
                _goal(ok),
            )
        )

    lines = [
        f"Measured {results['date']} ({results['mode']} mode, {results['total_wall_s']} s) on "
        f"{m['cpus_usable']} of {m['cpus']} CPUs, {m['cpu_model']}, "
        f"{m['implementation']} {m['python']}, {m['platform']}.",
        "",
        "| scenario | result | goal | |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
    ]
    return "\n".join(lines)
