#!/bin/sh
echo "Thinking very hard"
sleep 600
