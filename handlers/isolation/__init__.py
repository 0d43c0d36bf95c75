"""The containment Lambdas (contain, protect, release, check-target): thin adapters over core.containment."""
