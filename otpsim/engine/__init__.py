"""The engine: everything otpsim simulates, behind one face, :class:`Simulator`."""
