#!/bin/sh
# The real image's start.sh also handles NB_UID/CHOWN_HOME when started as root; the stand-in only
# runs the command, so `docker run jupyter/scipy-notebook bash` or `python` works as it does there.
set -e
exec "$@"
