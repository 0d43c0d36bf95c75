"""The examination's Lambda side: launch the analysis instance, run the examiner on it, follow it, end it.

The examiner itself (what runs on the analysis instance) is the `examiner` package, not part of any Lambda.
"""
