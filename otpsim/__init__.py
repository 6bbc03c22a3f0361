"""otpsim: a local SMS-gateway simulator and test harness for OTP-over-SMS APIs."""

__version__ = "0.1.0"
