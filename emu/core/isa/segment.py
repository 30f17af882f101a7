"""segment instructions (SDM Vol. 2)."""
