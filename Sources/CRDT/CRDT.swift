// The CRDT module; see docs/architecture.md.
