#!/bin/sh
# Prints everything a leaked credential could hide in: environment, git config, mounts.
env
for config in /workspace/*/.git/config; do cat "$config"; done
cat /proc/1/cmdline | tr '\0' ' '; echo
cat /proc/mounts
