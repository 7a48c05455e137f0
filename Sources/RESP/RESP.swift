// The RESP module; see docs/architecture.md.
