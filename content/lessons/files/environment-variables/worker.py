"""A small worker that processes a few jobs and logs what it does.

Its settings come from the environment, so one image runs quietly in production
and chattily while you debug it:
  LOG_LEVEL    DEBUG, INFO, WARNING or ERROR (default INFO)
  WORKER_NAME  the name in front of every line (default worker)
"""
import logging
import os
import sys

level = os.environ.get("LOG_LEVEL", "INFO").upper()
name = os.environ.get("WORKER_NAME", "worker")

# Check the settings before doing any work: a typo should stop the container at once, loudly.
if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    sys.exit(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {level!r}")

# Containers log to standard output; Docker collects it (docker logs).
logging.basicConfig(stream=sys.stdout, level=level, format=f"%(levelname)-7s {name}: %(message)s")
log = logging.getLogger()

log.debug("settings: LOG_LEVEL=%s WORKER_NAME=%s", level, name)
for job in range(1, 4):
    log.debug("picked up job %d", job)
    log.info("finished job %d", job)
log.warning("queue is empty, stopping")
