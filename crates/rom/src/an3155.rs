//! an3155 (placeholder until built).
