"""autorun: inspect, follow, retry and replay automation runs."""

__version__ = "0.1.0"
