"""prepaidgw: the building gateway that meters, bills and dispenses prepaid supply."""

__version__ = "0.1.0"
