"""Triggers: the EventBridge patterns that start a response and the handlers that build its input."""
