//! dfuse (placeholder until built).
