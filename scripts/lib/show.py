"""Pretty-prints the demo's results from JSON on stdin: `show.py es|influx|prom|count`."""
import json
import sys


def es(doc):
    hits = doc["hits"]
    total = hits["total"]["value"] if isinstance(hits["total"], dict) else hits["total"]
    print(f"  {total} documents so far")
    for hit in hits["hits"]:
        source = hit["_source"]
        log = source.get("log", {})
        level = source.get("log.level") or log.get("level")
        origin = log.get("origin", {})
        file = origin.get("file", {})
        where = f"{file.get('name')}:{file.get('line')} {origin.get('function')}"
        print(f"  {source.get('@timestamp')} {str(level):5} {where:45} {source.get('message')}")


def influx(doc):
    for result in doc.get("results", []):
        for series in result.get("series", []):
            print(f"  {series['name']:7} {series['columns'][1]:14} {series['values'][0][1]}")


def prom(doc):
    for result in doc["data"]["result"]:
        metric = result["metric"]
        print(f"  {metric.get('__name__', ''):32} {metric.get('job', ''):12} {result['value'][1]}")


def count(doc):
    print(doc.get("count", 0))


if __name__ == "__main__":
    try:
        data = json.load(sys.stdin)
    except ValueError:
        sys.exit(1)
    {"es": es, "influx": influx, "prom": prom, "count": count}[sys.argv[1]](data)
