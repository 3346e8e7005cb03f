#!/bin/sh
# Works in visible steps, so a live tail has something to follow.
echo "step one: reading"
sleep 1
echo "step two: editing"
sleep 1
echo ""
echo "All done."
