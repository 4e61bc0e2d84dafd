//! an4221 (placeholder until built).
