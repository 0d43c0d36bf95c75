"""The tag contract (DESIGN.md): one place for the keys and the values that start a response."""

INCIDENT_TAG = "SecurityIncidentStatus"
CASE_TAG = "SecurityIncidentCaseId"
ACTION_ANALYZE = "Analyze"
ACTION_CONTAIN = "Contain"
ACTIONS = (ACTION_ANALYZE, ACTION_CONTAIN)
# Tag put on every resource the flow creates (snapshots, groups, volumes) so it can be found and cleaned.
MANAGED_BY_TAG = "irforensics:managed-by"
MANAGED_BY_VALUE = "irforensics"
