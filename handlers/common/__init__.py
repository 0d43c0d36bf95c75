"""Code shared by every Lambda: errors, names, sessions, the case model and the evidence store."""
