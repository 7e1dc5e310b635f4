"""drills: executable disaster-recovery drills with measured RTO and RPO."""

__version__ = "0.1.0"
