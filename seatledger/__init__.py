"""seatledger: per-seat billing as an event-sourced stream processor."""

__version__ = "0.1.0"
