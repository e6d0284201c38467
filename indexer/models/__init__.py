"""Models shipped with anyshot (open_clip local-dir folders) and the script that trains them."""
