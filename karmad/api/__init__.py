"""RPC handlers, one module per concept; each exposes `register(router, services)`."""
