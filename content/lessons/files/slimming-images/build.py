"""Turns sales.csv into a static HTML report: the "build step" of a small site.

In a real project this would be a site generator, a bundler or a compiler, with all its
dependencies: needed to make the site, not to serve it.
"""
import csv
import html
import sys
from collections import defaultdict

totals: dict[str, float] = defaultdict(float)
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        totals[row["region"]] += float(row["amount"])

rows = "\n".join(
    f"<tr><td>{html.escape(region)}</td><td>{total:.2f}</td></tr>" for region, total in sorted(totals.items())
)
print(f"""<!doctype html>
<meta charset="utf-8">
<title>Sales report</title>
<h1>Sales by region</h1>
<table>
<tr><th>Region</th><th>Total</th></tr>
{rows}
</table>""")
