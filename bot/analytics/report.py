"""The quality figures of a period: in the terminal, as a self-contained HTML page, or as a PNG.

    python -m bot.analytics.report --from 2026-11-01 --to 2026-11-30 [--topic card_arrival]
                                   [--html report.html] [--png report.png]

The HTML page is the dashboard itself (same markup, styles and Chart.js charts) with the
figures, the styles and the scripts inlined: it opens anywhere, offline. The PNG is drawn
with matplotlib. Figures come from :func:`bot.analytics.summary.summarize` over the durable
records, exactly as the dashboard API serves them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.config import PROJECT_ROOT

STATIC = PROJECT_ROOT / "bot" / "web" / "static"
CHART_JS = STATIC / "vendor" / "chartjs" / "chart.umd.min.js"


def _pct(ratio: dict) -> str:
    return "-" if ratio.get("rate") is None else f"{100 * ratio['rate']:.1f} %"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _frac(ratio: dict) -> str:
    return f"({ratio['numerator']}/{ratio['denominator']})"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s" if value < 90 else f"{value / 60:.1f} min"


def text_report(s: dict) -> str:
    """The figures as plain text for the terminal."""
    est, labels = s["estimated_satisfaction"], s["escalation_labels"]
    bot, agent = s["csat"]["bot_only"], s["csat"]["agent_handled"]
    topic = f", topic {s['period']['topic']}" if s["period"]["topic"] else ""
    lines = [
        f"Support quality {s['period']['from'][:10]} .. {s['period']['to'][:10]} (exclusive){topic}",
        "",
        f"  conversations                 {s['conversations']}",
        f"  containment                   {_pct(s['containment'])} {_frac(s['containment'])}",
        f"  false containment             {_pct(s['false_containment'])} {_frac(s['false_containment'])} of bot-only",
        f"  escalation rate               {_pct(s['escalation'])} {_frac(s['escalation'])}",
    ]
    for code, ratio in s["escalation_reasons"].items():
        lines.append(f"    {code:27} {_pct(ratio)} {_frac(ratio)}")
    ttfr, aht = s["time_to_first_agent_reply"], s["agent_handle_time"]
    lines += [
        f"  first agent reply             median {_secs(ttfr['median'])}, p90 {_secs(ttfr['p90'])} ({ttfr['count']} tickets)",
        f"  agent handle time             median {_secs(aht['median'])}, p90 {_secs(aht['p90'])} ({aht['count']} tickets)",
        f"  abandoned while waiting       {_pct(s['abandonment_while_waiting'])} {_frac(s['abandonment_while_waiting'])}",
        f"  CSAT bot only                 mean {bot['mean'] or '-'}, satisfied {_pct(bot['satisfied'])}, response {_pct(bot['response_rate'])} {_frac(bot['response_rate'])}",
        f"  CSAT agent handled            mean {agent['mean'] or '-'}, satisfied {_pct(agent['satisfied'])}, response {_pct(agent['response_rate'])} {_frac(agent['response_rate'])}",
        f"  CSAT coverage                 {_pct(s['csat_coverage'])} {_frac(s['csat_coverage'])}",
        f"  estimated satisfied           {_share(est['estimated_satisfied'])}"
        f" of all, agreement with ratings {_pct(est['agreement'])} {_frac(est['agreement'])}"
        f"{'' if est['calibrated'] else ' (uncalibrated: too few ratings)'}",
        f"  durable resolution            {_pct(s['durable_resolution'])} {_frac(s['durable_resolution'])}",
        f"  missed escalations (labels)   {_pct(labels['missed'])} {_frac(labels['missed'])}",
        f"  unnecessary escalations       {_pct(labels['unnecessary'])} {_frac(labels['unnecessary'])}",
        f"  label coverage                {_pct(labels['coverage'])} {_frac(labels['coverage'])}",
        "",
        "  per day        conv  contained  false cont.  escalated  abandoned  1st reply  CSAT bot/agent",
    ]
    for day in s["daily"]:
        if not day["conversations"]:
            continue
        csat = f"{day['csat_bot_only'] or '-'} / {day['csat_agent_handled'] or '-'}"
        lines.append(
            f"    {day['day']}  {day['conversations']:>5}  {_pct(day['containment']):>9}"
            f"  {_pct(day['false_containment']):>11}  {_pct(day['escalation']):>9}"
            f"  {_pct(day['abandonment_while_waiting']):>9}  {_secs(day['first_agent_reply_median']):>9}  {csat}"
        )
    lines += [
        "",
        "  worst-served intents          messages  fallback  didn't help  escalated",
    ]
    for row in s["per_intent"][:15]:
        lines.append(
            f"    {row['intent'][:28]:28} {row['volume']:>8}  {_pct(row['fallback']):>8}"
            f"  {_pct(row['didnt_help']):>11}  {_pct(row['escalation']):>9}"
        )
    return "\n".join(lines)


def _inline_script(code: str) -> str:
    return code.replace("</script", "<\\/script")


def html_report(s: dict) -> str:
    """The dashboard page with the figures, styles and scripts inlined (opens offline)."""
    page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    css = (STATIC / "dashboard.css").read_text(encoding="utf-8")
    data = json.dumps(s).replace("<", "\\u003c")
    scripts = (
        f"<script>{_inline_script(CHART_JS.read_text(encoding='utf-8'))}</script>\n"
        f"<script>window.DASHBOARD_DATA = {data};</script>\n"
        f"<script>{_inline_script((STATIC / 'dashboard.js').read_text(encoding='utf-8'))}</script>"
    )
    page = page.replace(
        '<link rel="stylesheet" href="/static/dashboard.css">',
        f"<style>{css}\n[data-live-only] {{ display: none !important; }}</style>",
    )
    page = page.replace('<script src="/static/vendor/chartjs/chart.umd.min.js"></script>', "")
    page = page.replace('<script src="/static/dashboard.js"></script>', scripts)
    return page


def png_report(s: dict, path: Path) -> None:
    """The main figures and charts as one PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    fig.suptitle(
        f"Support quality {s['period']['from'][:10]} .. {s['period']['to'][:10]}: "
        f"{s['conversations']} conversations, containment {_pct(s['containment'])}, "
        f"false containment {_pct(s['false_containment'])}, escalation {_pct(s['escalation'])}",
        fontsize=12,
    )
    daily = s["daily"]
    days = [d["day"][5:] for d in daily]
    ax = axes[0][0]
    ax.bar(days, [d["conversations"] for d in daily], color="#d9e1f5", label="conversations")
    ax.set_ylabel("conversations")
    twin = ax.twinx()
    for key, colour, label in (
        ("containment", "#1f7a4d", "containment %"),
        ("false_containment", "#b3261e", "false containment %"),
        ("escalation", "#2f5bd3", "escalation %"),
    ):
        values = [None if d[key]["rate"] is None else 100 * d[key]["rate"] for d in daily]
        twin.plot(
            days,
            [float("nan") if v is None else v for v in values],
            marker="o",
            color=colour,
            label=label,
        )
    twin.set_ylim(0, 100)
    twin.legend(loc="upper left", fontsize=8)
    ax.set_title("Per day")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)

    reasons = s["escalation_reasons"]
    ax = axes[0][1]
    ax.barh(list(reasons), [r["numerator"] for r in reasons.values()], color="#2f5bd3")
    ax.invert_yaxis()
    ax.set_title("Escalated conversations by reason code")

    ax = axes[1][0]
    groups = [("bot only", s["csat"]["bot_only"]), ("agent handled", s["csat"]["agent_handled"])]
    xs = range(len(groups))
    satisfied = [100 * (g["satisfied"]["rate"] or 0) for _, g in groups]
    response = [100 * (g["response_rate"]["rate"] or 0) for _, g in groups]
    ax.bar([x - 0.2 for x in xs], satisfied, width=0.4, color="#1f7a4d", label="satisfied (4-5) %")
    ax.bar([x + 0.2 for x in xs], response, width=0.4, color="#8a94a6", label="response rate %")
    ax.set_xticks(list(xs), [name for name, _ in groups])
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    est = s["estimated_satisfaction"]
    ax.set_title(
        f"CSAT (coverage {_pct(s['csat_coverage'])}); estimated satisfied "
        f"{_share(est['estimated_satisfied'])},"
        f" agreement {_pct(est['agreement'])}"
    )

    ax = axes[1][1]
    worst = s["per_intent"][:10][::-1]
    names = [r["intent"] for r in worst]
    for offset, key, colour in (
        (-0.27, "fallback", "#b26a00"),
        (0, "didnt_help", "#b3261e"),
        (0.27, "escalation", "#2f5bd3"),
    ):
        ax.barh(
            [i + offset for i in range(len(worst))],
            [100 * (r[key]["rate"] or 0) for r in worst],
            height=0.27,
            color=colour,
            label=key,
        )
    ax.set_yticks(range(len(worst)), names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Worst-served intents (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from bot.analytics.collect import collect_or_exit
    from bot.analytics.period import add_period_arguments, period_of
    from bot.analytics.summary import summarize

    parser = argparse.ArgumentParser(description="Support quality figures for a period.")
    add_period_arguments(parser)
    parser.add_argument("--topic", help="only conversations that raised this intent/topic")
    parser.add_argument("--html", type=Path, help="also write a self-contained HTML report here")
    parser.add_argument("--png", type=Path, help="also write a PNG report here")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    start, end = period_of(parser, args)
    records = collect_or_exit(parser)
    summary = summarize(records, start, end, args.topic)
    print(text_report(summary))
    for path, write in (
        (args.html, lambda p: p.write_text(html_report(summary), encoding="utf-8")),
        (args.png, lambda p: png_report(summary, p)),
        (args.json, lambda p: p.write_text(json.dumps(summary, indent=2), encoding="utf-8")),
    ):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
