//! dfu_file (placeholder until built).
