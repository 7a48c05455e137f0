// The Rings module; see docs/architecture.md.
