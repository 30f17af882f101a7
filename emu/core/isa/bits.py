"""bits instructions (SDM Vol. 2)."""
