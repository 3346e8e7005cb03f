# An example environment: the image, repos and setup commands a run executes in.
oz-gateway environment create --email you@example.com \
  --name backend \
  --docker-image python:3.12 \
  --repo acme/api@main \
  --repo acme/shared \
  --setup-command "pip install -e ./api" \
  --setup-command "make -C api db" \
  --working-dir /workspace/api \
  --description "API service with its shared library"
