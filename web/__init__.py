"""Templates and static files of the inbox page (shipped inside the wheel as otpsim.web)."""
