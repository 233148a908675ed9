"""Radar archives through pysteps' importers: sources, the timeline, caching, and the windows cut from them."""
