"""Sales pipeline: reads every CSV file in the input folder, adds up `amount` per group, and writes
report.json (for programs) and index.html (for people) to the output folder.

Configured entirely from the environment:
  INPUT_DIR   where the CSV files are        (default /in)
  OUTPUT_DIR  where the reports go           (default /out)
  GROUP_BY    the column to group by         (default region)
  LOG_LEVEL   DEBUG, INFO, WARNING or ERROR  (default INFO)
"""
import csv
import html
import json
import logging
import os
import sys
from collections import defaultdict
from pathlib import Path

input_dir = Path(os.environ.get("INPUT_DIR", "/in"))
output_dir = Path(os.environ.get("OUTPUT_DIR", "/out"))
group_by = os.environ.get("GROUP_BY", "region")
level = os.environ.get("LOG_LEVEL", "INFO").upper()

logging.basicConfig(stream=sys.stdout, level=level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
                    format="%(levelname)-7s pipeline: %(message)s")
log = logging.getLogger()

files = sorted(input_dir.glob("*.csv"))
if not files:
    log.error("no CSV files in %s (mount your data there)", input_dir)
    sys.exit(1)

totals: dict[str, float] = defaultdict(float)
rows = 0
for path in files:
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if group_by not in row:
                log.error("%s has no column %r", path.name, group_by)
                sys.exit(1)
            totals[row[group_by]] += float(row["amount"])
            rows += 1
    log.debug("read %s", path.name)
log.info("read %d rows from %d files, grouped by %s", rows, len(files), group_by)

report = {"by": group_by, "files": [p.name for p in files], "rows": rows,
          "totals": {k: round(v, 2) for k, v in sorted(totals.items())}}
try:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td></tr>" for k, v in report["totals"].items())
    (output_dir / "index.html").write_text(
        f"<!doctype html>\n<meta charset=\"utf-8\">\n<title>Sales report</title>\n<h1>Sales by {html.escape(group_by)}</h1>\n"
        f"<table>\n<tr><th>{html.escape(group_by)}</th><th>total</th></tr>\n{table}\n</table>\n"
        f"<p>{rows} rows from {len(files)} files.</p>\n",
        encoding="utf-8",
    )
except OSError as e:
    log.error("cannot write to %s: %s", output_dir, e.strerror)
    sys.exit(1)
log.info("wrote report.json and index.html to %s", output_dir)
