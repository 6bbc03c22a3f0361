"""The pure domain: OTP entity and state machine, PINs, phone numbers, SMS parts.

Nothing here knows about HTTP, YAML, HTML or sockets.
"""
