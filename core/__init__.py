"""The core: pure plans and typed ports to AWS, shared by the Lambdas (handlers/), the operator CLI (irf/)
and the local simulation (simulation/).

Nothing here reads the environment or knows which adapter calls it: clients, clocks and the
places that keep records are passed in.
"""
