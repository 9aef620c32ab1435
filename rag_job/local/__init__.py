"""Everything for one laptop: tiny models built offline, a local multi-node Ray cluster, the demo."""
