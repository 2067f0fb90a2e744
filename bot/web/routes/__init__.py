"""The gateway's HTTP and websocket routes, one module per area."""
