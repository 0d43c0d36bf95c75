"""Step Functions definitions as plain dicts: pure, testable, statelint-clean."""
