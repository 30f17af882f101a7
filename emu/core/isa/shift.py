"""shift instructions (SDM Vol. 2)."""
