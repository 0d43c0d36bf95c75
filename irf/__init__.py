"""irf: the responder's operator command line (runtime dependencies only; the simulation lives in `simulation`)."""
