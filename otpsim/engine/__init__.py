"""The engine: everything otpsim simulates, behind one face, :class:`Simulator`.

Front ends (``server/``, the CLI, the pytest plugin) import from here: the Simulator,
its value types, and the network model; never the engine's other modules.
"""

from otpsim.engine.auth import MAX_CREDENTIAL, Principal, too_long
from otpsim.engine.network import NetworkSpec
from otpsim.engine.scheduler import Job, Kind, Timers
from otpsim.engine.simulator import Admission, Caller, Recovery, Simulator

__all__ = [
    "MAX_CREDENTIAL", "Admission", "Caller", "Job", "Kind", "NetworkSpec", "Principal",
    "Recovery", "Simulator", "Timers", "too_long",
]  # fmt: skip
