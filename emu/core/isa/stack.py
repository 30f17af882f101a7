"""stack instructions (SDM Vol. 2)."""
