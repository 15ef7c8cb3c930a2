#!/bin/sh
# Like the real start-notebook.py: the server with any options given on the command line. The token is
# JUPYTER_TOKEN when set (read by the notebook itself), else a random one printed in the log.
set -e
exec jupyter notebook "$@"
