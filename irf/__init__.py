"""irf: the operator command line and the local simulation."""
