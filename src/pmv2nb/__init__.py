"""pmv2nb."""
