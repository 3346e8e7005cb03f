#!/bin/sh
# A scripted agent: edits README.md in its working directory, leaves a report artifact,
# and prints what it does in Claude Code's stream-json format.
set -e
echo '{"type":"system","subtype":"init","session_id":"s1","model":"scripted"}'
echo '{"type":"assistant","message":{"content":[{"type":"text","text":"Reading the task."}]}}'
echo '{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"cat README.md"}}]}}'
echo "Agent note: $(head -n1 "$OZ_PROMPT_FILE")" >> README.md
echo "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"name\":\"Edit\",\"input\":{\"file_path\":\"$PWD/README.md\"}}]}}"
mkdir -p /workspace/.oz/artifacts
echo "report for $OZ_RUN_ID" > /workspace/.oz/artifacts/report.txt
echo '{"type":"result","subtype":"success","is_error":false,"result":"Updated README.md as asked."}'
