"""The agent's work leaves its sandbox as data.

After the agent exits (and its container is stopped, so nothing of it still runs), a
throwaway container that the agent never ran in — nothing in it but git and a shell
(:mod:`runner.exporter_image`), no network, no token, no secrets — commits whatever the agent
left uncommitted and writes each repository's new commits as a git bundle into ``export/``.
Whatever the agent planted in its repository (hooks, filters, ``core.fsmonitor``, aliases,
includes) can at worst run *there*.  The host reads what it wrote only as bytes, through
:mod:`runner.untrusted_files`, and :mod:`runner.landing` checks every object before a push.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ErrorCode, OzError
from core.settings import Settings
from runner.backends.base import Backend
from runner.sandbox import EXPORT_CAPABILITIES, Bind, SandboxSpec
from runner.untrusted_files import Missing, Refused, copy_file, open_dir, read_file
from runner.workspace import ClonedRepo, Workspace

EXPORT_DIR = "/export"
EXPORT_TIMEOUT = 600
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# For each repo: $1 its directory under /workspace, $2 the commit it was cloned at, $3 the output
# name.  Writes $3.refs ("<agent's HEAD> <HEAD plus what was left uncommitted>") and $3.bundle
# of the commits the clone lacks; messages go to $3.err and the exit code to $3.code.
#
# The agent's repository is read only for its HEAD and its objects.  Staging and committing
# use a git directory of the exporter's own (the agent's objects reached as an alternate), so
# the agent's config, hooks, attributes and filters are never even read: the commit holds
# the bytes the agent left in its files, exactly.
SCRIPT = r"""
export HOME=/tmp GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 \
  GIT_AUTHOR_NAME=oz-export GIT_AUTHOR_EMAIL=export@oz.invalid \
  GIT_COMMITTER_NAME=oz-export GIT_COMMITTER_EMAIL=export@oz.invalid
printf '.oz/\n' > /tmp/exclude
g() {
  git -c safe.directory='*' -c core.hooksPath=/dev/null -c core.fsmonitor=false -c gc.auto=0 \
      -c maintenance.auto=false -c commit.gpgSign=false -c core.excludesFile=/tmp/exclude "$@"
}
export_repo() {
  cd "/workspace/$1" 2>/dev/null || { echo "the directory /workspace/$1 is gone"; return 1; }
  gitdir=$(g rev-parse --absolute-git-dir 2>/dev/null) && agent=$(g rev-parse --verify -q 'HEAD^{commit}') \
    || { echo "its HEAD is not a commit (is .git intact?)"; return 1; }
  own="/tmp/export-$3"
  g init -q --template= "$own" && printf '%s/objects\n' "$gitdir" > "$own/.git/objects/info/alternates" || return 1
  export GIT_DIR="$own/.git" GIT_WORK_TREE="/workspace/$1"
  g update-ref --no-deref HEAD "$agent" && g read-tree HEAD && g add -A || return 1
  if g diff --cached --quiet; then
    work=$agent
  else
    g commit -q --no-verify -m 'Uncommitted work' && work=$(g rev-parse --verify 'HEAD^{commit}') || return 1
  fi
  printf '%s %s\n' "$agent" "$work" > "/export/$3.refs"
  if [ "$work" = "$2" ] || g merge-base --is-ancestor "$work" "$2"; then return 0; fi
  g update-ref refs/oz-export/work "$work" && g bundle create -q "/export/$3.bundle" refs/oz-export/work "^$2"
}
while [ $# -ge 3 ]; do
  ( export_repo "$1" "$2" "$3" ) > "/export/$3.err" 2>&1
  echo $? > "/export/$3.code"
  shift 3
done
"""


@dataclass(frozen=True)
class Exported:
    """What the exporter says of one repo; ``bundle`` is the host's own copy of its bundle."""

    repo: ClonedRepo
    agent_head: str
    work: str
    bundle: Path | None


def export_all(backend: Backend, settings: Settings, ws: Workspace, run_id: str) -> list[Exported]:
    """Run the exporter over every repo of the workspace and read back what it wrote."""
    if not ws.repos:
        return []
    args = [a for i, repo in enumerate(ws.repos) for a in (repo.path.name, repo.base_commit, str(i))]
    spec = SandboxSpec(
        image=settings.export_image or backend.helper_image(),
        binds=[Bind("/workspace", ws.files), Bind(EXPORT_DIR, ws.export_dir)],
        network_mode="none",
        memory=settings.container_memory,
        cpus=settings.container_cpus,
        pids=256,
        user="0:0",  # to read and write whatever uid the agent's files belong to
        pull=settings.pull_images,
        gateway=settings.effective_gateway_id,
        host=settings.effective_host_name,
        role="export",
        capabilities=EXPORT_CAPABILITIES,
    )
    code, output = backend.run_once(run_id, spec, ["/bin/sh", "-c", SCRIPT, "export", *args], EXPORT_TIMEOUT)
    if code != 0:
        detail = "it ran out of time" if code is None else ws.masker.text(output.strip()[-1000:]) or f"exit {code}"
        raise OzError(ErrorCode.INTERNAL_ERROR, f"the export of the agent's work failed: {detail}")
    return [_read(ws, i, repo, settings.export_max_bytes) for i, repo in enumerate(ws.repos)]


def _read(ws: Workspace, index: int, repo: ClonedRepo, limit: int) -> Exported:
    with open_dir(ws.export_dir) as fd:
        try:
            code = read_file(fd, f"{index}.code", 16).strip()
            said = read_file(fd, f"{index}.err", 64 * 1024).decode("utf-8", "replace").strip()
        except Refused as refused:
            raise _unusable(repo, f"the exporter's report is unreadable ({refused})") from None
        if code != b"0":
            raise _unusable(repo, ws.masker.text(said[-1000:]) or "the export failed")
        try:
            refs = read_file(fd, f"{index}.refs", 200).decode("ascii", "replace").split()
        except Refused as refused:
            raise _unusable(repo, str(refused)) from None
        if len(refs) != 2 or not all(_SHA.fullmatch(r) for r in refs):
            raise _unusable(repo, "the exporter's report is malformed")
        target = ws.pristine / f"export-{index}.bundle"
        bundle: Path | None = target
        try:
            copy_file(fd, f"{index}.bundle", target, limit)
        except Missing:
            bundle = None  # nothing new to fetch: the work is already in the pristine clone
        except Refused as refused:
            raise refusal(repo, str(refused)) from None
    return Exported(repo, refs[0], refs[1], bundle)


def refusal(repo: ClonedRepo, reason: str) -> OzError:
    """The agent's work broke a rule of what may be pushed (a symlink out of the repo, a
    submodule, a size cap): a content policy violation, which ends the run FAILED."""
    return OzError(
        ErrorCode.CONTENT_POLICY_VIOLATION, reason, title=f"The agent's changes to {repo.ref.full_name} were not pushed"
    )


def _unusable(repo: ClonedRepo, detail: str) -> OzError:
    return OzError(
        ErrorCode.AGENT_PROCESS_FAILED,
        detail,
        title=f"The agent left {repo.ref.full_name} without a usable git repository",
    )
