//! The power-cut campaign runner (built in the update-engine issue).
