"""HTTP handlers: thin, they decode, call the flow and encode."""
