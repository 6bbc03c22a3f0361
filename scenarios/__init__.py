"""Ready-made scenario files (shipped inside the wheel as otpsim.scenarios)."""
