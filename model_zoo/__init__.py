"""Model zoo: one protocol (base.py), one lazy registry, ~26 architectures."""
