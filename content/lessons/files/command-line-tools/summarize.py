"""summarize: add up a numeric column of a CSV file per group, and print the totals as JSON.

    summarize sales.csv                     totals of `amount` per `region`
    summarize sales.csv --by product        per another column
    summarize sales.csv --out totals.json   write a file instead of printing
    summarize - < sales.csv                 read standard input
"""
import argparse
import csv
import json
import sys
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(prog="summarize", description="Add up a numeric CSV column per group; print JSON.")
    parser.add_argument("input", help="the CSV file to read, or - for standard input")
    parser.add_argument("--by", default="region", help="the column to group by (default: region)")
    parser.add_argument("--sum", default="amount", help="the numeric column to add up (default: amount)")
    parser.add_argument("--out", help="write the JSON to this file instead of standard output")
    args = parser.parse_args()

    try:
        source = sys.stdin if args.input == "-" else open(args.input, newline="", encoding="utf-8")
    except OSError as e:
        parser.error(f"cannot read {args.input}: {e.strerror}")  # exits with code 2
    with source:
        rows = list(csv.DictReader(source))
    if not rows:
        hint = " (in a container, standard input needs docker run -i)" if args.input == "-" else ""
        parser.error(f"no rows in {args.input}{hint}")

    totals: dict[str, float] = defaultdict(float)
    for line, row in enumerate(rows, start=2):
        try:
            totals[row[args.by]] += float(row[args.sum])
        except KeyError as e:
            parser.error(f"{args.input} has no column {e}")
        except ValueError:
            parser.error(f"{args.input}, line {line}: {row[args.sum]!r} is not a number")

    result = {"rows": len(rows), "by": args.by, "totals": {k: round(v, 2) for k, v in sorted(totals.items())}}
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"summarize: wrote {len(totals)} totals to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
