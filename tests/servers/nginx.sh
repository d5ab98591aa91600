#!/bin/sh
# Shell entry point for the nginx test peer; see nginx.py for the
# options, the content served and the "READY <port> <dir>" protocol.
exec python3 "$(dirname "$0")/nginx.py" "$@"
