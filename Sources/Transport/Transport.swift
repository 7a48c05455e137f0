// The Transport module; see docs/architecture.md.
