//! Shared helpers for micrun's cross-crate and end-to-end tests.
