"""``python -m bots.github``: the GitHub Actions step (composed in ``cli.github_action``,
which may use the runner for local mode)."""

import sys

from cli.github_action import main

sys.exit(main())
