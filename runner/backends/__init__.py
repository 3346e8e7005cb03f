"""What runs a run's sandbox: the operations an execution asks of it (:class:`Backend`,
:class:`SandboxHandle`), and the Docker engine as the first backend.

``docs/runner-backends.md`` says what each operation guarantees and how a Kubernetes backend
would keep the same guarantees.  The host-side parts of a run — the pristine clone with the
token, the run's own filesystem, landing the exported work, the pull request — are not a
backend's: they stay in the worker whatever runs the sandbox.
"""

from runner.backends.base import Backend, SandboxHandle
from runner.backends.docker import DockerBackend

__all__ = ["Backend", "DockerBackend", "SandboxHandle"]
