"""io instructions (SDM Vol. 2)."""
