//! Table-set lint: entries a scheme's own rules can never reach.
