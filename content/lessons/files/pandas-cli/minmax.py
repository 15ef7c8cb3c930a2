"""minmax: the smallest and the largest value of every numeric column of a table.

    minmax -f data.csv                  read a CSV file
    minmax -i '{"temp": [3, 10, 4]}'    read a JSON object of columns, given inline
"""
import argparse
import json
import logging
import os
import sys

import pandas as pd

# Settings first: a misspelt level stops the program with a message instead of running half-configured.
level = os.environ.get("LOG_LEVEL", "WARNING").upper()
if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    sys.exit(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {level!r}")
logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s minmax: %(message)s")
log = logging.getLogger()

parser = argparse.ArgumentParser(prog="minmax", description="Print the minimum and maximum of every numeric column.")
source = parser.add_mutually_exclusive_group(required=True)
source.add_argument("-f", "--file", help="a CSV file to read")
source.add_argument("-i", "--inline", help="a JSON object of columns, such as '{\"temp\": [3, 10, 4]}'")
args = parser.parse_args()

if args.file:
    log.info("reading %s", args.file)
    try:
        table = pd.read_csv(args.file)
    except FileNotFoundError:
        parser.error(f"cannot read {args.file}: no such file (in a container, mount its folder with -v)")
else:
    try:
        table = pd.DataFrame(json.loads(args.inline))
    except ValueError as e:
        parser.error(f"-i needs a JSON object of columns of equal length: {e}")
log.debug("pandas %s, columns: %s", pd.__version__, ", ".join(map(str, table.columns)))

numbers = table.select_dtypes("number")
log.info("%d rows, %d numeric columns", len(table), numbers.shape[1])
if numbers.empty:
    parser.error("no numeric column to summarize")
result = pd.DataFrame({"min": numbers.min(), "max": numbers.max()})
print(result.to_string())
