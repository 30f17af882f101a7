"""string instructions (SDM Vol. 2)."""
