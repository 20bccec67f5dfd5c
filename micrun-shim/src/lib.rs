//! micrun-shim: the runtime engine behind `containerd-shim-mica-v2`.
//!
//! Not yet implemented: see the shim issue. This crate will turn an OCI bundle into an
//! instance spec, boot it on a pedestal (qemu, sim, xen, baremetal) and bridge its
//! console and lifecycle to containerd over the micrun-proto host endpoint.

pub mod annotations;
pub mod config;
pub mod error;
pub mod firmware;
pub mod instance;
pub mod oci;
pub mod pedestal;
pub mod resources;
pub mod service;
pub mod spec;
pub mod state;
