"""How the field measures: MPJPE and its protocols, per-action reports, coverage/QCE/AUSE, `raypose evaluate`."""
