#!/bin/sh
# What an agent's container can reach: the endpoint named by $1:$2, the cloud metadata
# address, the host's Redis on loopback. One line each, then a summary paragraph.
get() { (printf 'GET / HTTP/1.0\r\n\r\n'; sleep 1) | nc -w 5 "$1" "$2" 2>&1 | tail -n 1; }
echo "allowed: $(get "$1" "$2")"
echo "metadata: $(get 169.254.169.254 80 || true) (end)"
echo "redis: $(echo PING | nc -w 2 127.0.0.1 6379 2>&1 || true) (end)"
echo
echo probed
