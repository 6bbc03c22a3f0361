"""The HTTP side: the emulated provider API, the control API and the inbox page."""
