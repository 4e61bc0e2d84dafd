//! device (placeholder until built).
