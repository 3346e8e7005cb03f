#!/bin/sh
# The chaos and multi-host suites' agent (tests/cluster.py): tells the suite's counter that it
# started (through the egress forwarder, or over a simulated host's network), works a moment,
# answers.
(printf 'GET /start/%s HTTP/1.0\r\n\r\n' "$OZ_RUN_ID"; sleep 1) |
  nc -w 3 "${CHAOS_COUNTER_HOST:-127.0.0.1}" "$CHAOS_COUNTER_PORT" >/dev/null 2>&1
echo "working on it"
sleep "${CHAOS_WORK_SECONDS:-1}"
echo
echo "Done with $OZ_RUN_ID."
