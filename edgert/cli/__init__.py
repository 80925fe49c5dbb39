"""The `edgert` command line: one module per subcommand. Nothing else in edgert imports it."""
