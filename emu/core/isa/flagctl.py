"""flagctl instructions (SDM Vol. 2)."""
