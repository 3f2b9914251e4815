"""The `dunning` command line: `shared` holds the app and helpers, `main` registers each command family."""
