// The Daemon module; see docs/architecture.md.
