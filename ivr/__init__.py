"""IVR side: YAML dial plans, the flow engine, call transports (AGI, Twilio) and speech."""

__version__ = "0.1.0"
