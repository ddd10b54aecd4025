"""Domain operations. Each takes a session, owns its transaction, never imports Flask."""
