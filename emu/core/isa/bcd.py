"""bcd instructions (SDM Vol. 2)."""
