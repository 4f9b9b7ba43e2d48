"""The demo pipeline's live status, per hop, from the binaries' /metrics and Elasticsearch.

    status.py --logagent URL --logtransfer URL --es URL --index PATTERN
              [--interval 2] [--every 10] [--duration SECONDS]

On a terminal: one screen redrawn in place every --interval seconds. Otherwise (a pipe, a
CI log): one plain line every --every seconds. Stops after --duration seconds, or at Ctrl-C.
Rates are over the last refresh; latency quantiles over the same span, from the histogram.
"""
import argparse
import json
import os
import signal
import sys
import time
import urllib.request


def fetch(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def parse_metrics(text):
    """{name: {labels text: value}} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        try:
            out.setdefault(name, {})[labels.rstrip("}")] = float(value)
        except ValueError:
            pass
    return out


def total(metrics, name):
    return sum(metrics.get(name, {}).values()) if metrics is not None else None


def buckets(metrics, name):
    """[(upper bound, cumulative count)] of a histogram, sorted."""
    out = []
    for labels, count in (metrics or {}).get(name + "_bucket", {}).items():
        le = labels.partition('le="')[2].partition('"')[0]
        out.append((float("inf") if le == "+Inf" else float(le), count))
    return sorted(out)


def quantile(q, now, before):
    """The q-quantile of the observations between two scrapes of a histogram (the upper
    bound of the bucket it falls in), or None when there were none."""
    before = dict(before)
    delta = [(le, count - before.get(le, 0.0)) for le, count in now]
    if not delta or delta[-1][1] <= 0:
        return None
    rank = q * delta[-1][1]
    for le, count in delta:
        if count >= rank:
            return le
    return None


def es_count(url, index):
    text = fetch(f"{url}/{index}/_count")
    try:
        return json.loads(text)["count"] if text else None
    except (ValueError, KeyError):
        return None


class Snapshot:
    def __init__(self, args):
        self.at = time.monotonic()
        agent = fetch(args.logagent)
        transfer = fetch(args.logtransfer)
        self.agent = parse_metrics(agent) if agent is not None else None
        self.transfer = parse_metrics(transfer) if transfer is not None else None
        self.docs = es_count(args.es, args.index)


def rate(now, before, pick):
    a, b = pick(now), pick(before)
    if a is None or b is None or now.at <= before.at:
        return None
    return max(0.0, (a - b) / (now.at - before.at))


def num(value, unit="", digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def size(value):
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024


def ms(value):
    if value is None:
        return "-"
    if value == float("inf"):
        return "> 60 s"
    return f"<= {value * 1000:,.0f} ms" if value < 1 else f"<= {value:,.1f} s"


def fields(now, before):
    """Every figure of one refresh, by name."""
    a = lambda name: (lambda s: total(s.agent, name))
    t = lambda name: (lambda s: total(s.transfer, name))
    latency_now = buckets(now.transfer, "logtransfer_end_to_end_latency_seconds")
    latency_before = buckets(before.transfer, "logtransfer_end_to_end_latency_seconds")
    return {
        "agent_up": now.agent is not None,
        "transfer_up": now.transfer is not None,
        "read_rate": rate(now, before, a("logagent_lines_read_total")),
        "read": total(now.agent, "logagent_lines_read_total"),
        "files": total(now.agent, "logagent_files_watched"),
        "file_lag": total(now.agent, "logagent_send_lag_bytes"),
        "sent_rate": rate(now, before, a("logagent_lines_sent_total")),
        "sent": total(now.agent, "logagent_lines_sent_total"),
        "in_flight": total(now.agent, "logagent_lines_in_flight"),
        "failed": total(now.agent, "logagent_lines_failed_total"),
        "consumed_rate": rate(now, before, t("logtransfer_consumed_total")),
        "consumer_lag": total(now.transfer, "logtransfer_consumer_lag"),
        "paused": total(now.transfer, "logtransfer_paused"),
        "indexed_rate": rate(now, before, t("logtransfer_indexed_total")),
        "indexed": total(now.transfer, "logtransfer_indexed_total"),
        "dead": total(now.transfer, "logtransfer_dead_lettered_total"),
        "docs": now.docs,
        "p50": quantile(0.5, latency_now, latency_before),
        "p99": quantile(0.99, latency_now, latency_before),
    }


def screen(f, args, interval):
    down = lambda up: "" if up else "   (not answering)"
    paused = " (paused: Elasticsearch holds it back)" if f["paused"] else ""
    return [
        f"\033[1mpipeline status\033[0m {time.strftime('%H:%M:%S')}, every {interval:g} s; Ctrl-C stops everything",
        f"  file -> logagent        read  {num(f['read_rate'], ' lines/s', 1):>16}   {num(f['read'])} lines, {num(f['files'])} files, lag {size(f['file_lag'])}{down(f['agent_up'])}",
        f"  logagent -> Kafka       sent  {num(f['sent_rate'], ' lines/s', 1):>16}   {num(f['sent'])} acknowledged, {num(f['in_flight'])} in flight, {num(f['failed'])} failed",
        f"  Kafka -> logtransfer    read  {num(f['consumed_rate'], ' records/s', 1):>16}   consumer lag {num(f['consumer_lag'])} records{paused}{down(f['transfer_up'])}",
        f"  logtransfer -> ES       index {num(f['indexed_rate'], ' docs/s', 1):>16}   {num(f['indexed'])} indexed, {num(f['dead'])} dead letters",
        f"  Elasticsearch           {num(f['docs'])} documents in {args.index}",
        f"  read -> indexed         p50 {ms(f['p50'])}, p99 {ms(f['p99'])} (last {interval:g} s)",
    ]


def line(f):
    return (
        f"status {time.strftime('%H:%M:%S')}"
        f" | logagent read {num(f['read_rate'], '/s', 1)} sent {num(f['sent_rate'], '/s', 1)}"
        f" lag {size(f['file_lag'])}"
        f" | logtransfer consumed {num(f['consumed_rate'], '/s', 1)} consumer lag {num(f['consumer_lag'])}"
        f" indexed {num(f['indexed_rate'], '/s', 1)} dead letters {num(f['dead'])}"
        f" | index {num(f['docs'])} docs | read->indexed p99 {ms(f['p99'])}"
        + ("" if f["agent_up"] else " | logagent not answering")
        + ("" if f["transfer_up"] else " | logtransfer not answering")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logagent", required=True, help="logagent's /metrics URL")
    parser.add_argument("--logtransfer", required=True, help="logtransfer's /metrics URL")
    parser.add_argument("--es", required=True, help="Elasticsearch base URL")
    parser.add_argument("--index", required=True, help="index pattern to count")
    parser.add_argument("--interval", type=float, default=2.0, help="terminal refresh, s")
    parser.add_argument("--every", type=float, default=10.0, help="line period when not a terminal, s")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many s (0: never)")
    args = parser.parse_args()

    tty = sys.stdout.isatty()
    interval = args.interval if tty else args.every
    end = time.monotonic() + args.duration if args.duration > 0 else None
    before = Snapshot(args)
    drawn = 0
    while end is None or time.monotonic() < end:
        wait = interval if end is None else min(interval, max(0.0, end - time.monotonic()))
        time.sleep(wait)
        now = Snapshot(args)
        f = fields(now, before)
        before = now
        if tty:
            rows = screen(f, args, interval)
            # Back to the top of the last screen, then every row over its old text.
            out = f"\033[{drawn}F" if drawn else ""
            out += "".join(f"\033[2K{row}\n" for row in rows)
            sys.stdout.write(out)
            drawn = len(rows)
        else:
            print(line(f))
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # Die of the signal, as a shell expects of a child stopped by Ctrl-C.
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
