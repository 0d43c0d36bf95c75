"""Case lifecycle: validate a request, open the case (one open case per instance), close or fail it."""
