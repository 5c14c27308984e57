"""Grammar-constrained speech recognition for IVR menus: backends, resampling, endpointing."""
