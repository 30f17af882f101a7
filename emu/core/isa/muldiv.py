"""muldiv instructions (SDM Vol. 2)."""
