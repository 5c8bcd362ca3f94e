"""The commands a user runs that join several packages (demo, predict, plot); the CLI calls them."""
