"""Deterministic cross-account names.

The functions live in `handlers.common.naming` (no Pulumi import) so the Lambdas that look
resources up at run time and the stacks that create them share one definition.
"""

from handlers.common.naming import *  # noqa: F403
