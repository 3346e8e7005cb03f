"""Every GraphQL document the gateway sends to Linear, validated in the tests against the pinned
schema (``tests/linear/fixtures/linear-schema.graphql``), so a schema change fails loudly."""

from __future__ import annotations

from gql import gql

VIEWER = gql("""
query Viewer {
  viewer { id name }
}
""")

INSTALLED = gql("""
query Installed {
  viewer { id name }
  organization { id name urlKey }
}
""")
"""Asked once with a new install's token: the workspace it is for, and the app's user there."""

USER = gql("""
query User($id: String!) {
  user(id: $id) { id name displayName email active }
}
""")

ISSUE = gql("""
query Issue($id: String!) {
  issue(id: $id) {
    id identifier title description url priority priorityLabel
    team { id key name }
    project { id name }
    labels { nodes { id name } }
    state { id name type }
    comments(first: 100) {
      nodes { id body createdAt user { id name email } botActor { id name } }
    }
  }
}
""")

ACTIVITY_CREATE = gql("""
mutation ActivityCreate($input: AgentActivityCreateInput!) {
  agentActivityCreate(input: $input) { success agentActivity { id } }
}
""")

SESSION_UPDATE = gql("""
mutation SessionUpdate($id: String!, $input: AgentSessionUpdateInput!) {
  agentSessionUpdate(id: $id, input: $input) { success }
}
""")

STARTED_STATES = gql("""
query StartedStates($teamId: ID!) {
  workflowStates(filter: { team: { id: { eq: $teamId } }, type: { eq: "started" } }) {
    nodes { id name position }
  }
}
""")

ISSUE_MOVE = gql("""
mutation IssueMove($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) { success }
}
""")

ATTACH_GITHUB_PR = gql("""
mutation AttachPR($issueId: String!, $url: String!, $title: String) {
  attachmentLinkGitHubPR(issueId: $issueId, url: $url, title: $title) { success }
}
""")

ATTACH_URL = gql("""
mutation AttachURL($issueId: String!, $url: String!, $title: String) {
  attachmentLinkURL(issueId: $issueId, url: $url, title: $title) { success }
}
""")

COMMENT_CREATE = gql("""
mutation CommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id url } }
}
""")

ALL = {
    "Viewer": VIEWER,
    "User": USER,
    "Issue": ISSUE,
    "ActivityCreate": ACTIVITY_CREATE,
    "SessionUpdate": SESSION_UPDATE,
    "StartedStates": STARTED_STATES,
    "IssueMove": ISSUE_MOVE,
    "AttachPR": ATTACH_GITHUB_PR,
    "AttachURL": ATTACH_URL,
    "CommentCreate": COMMENT_CREATE,
}
