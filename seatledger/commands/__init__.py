"""The commands, one module per job; see seatledger/cli.py."""
