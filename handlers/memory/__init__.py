"""Memory acquisition: kernel discovery, pre-built LiME modules, capture through SSM to the case prefix."""
