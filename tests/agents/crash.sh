#!/bin/sh
echo "Starting work"
echo "fatal: model quota exhausted" >&2
exit 3
