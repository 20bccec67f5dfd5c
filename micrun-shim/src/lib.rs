//! micrun-shim: the runtime engine behind `containerd-shim-mica-v2` (and, through
//! it, libmicrun's runtime API).
//!
//! ```text
//! Create: bundle ─► spec (config.json via oci, annotations, config, firmware,
//!                   resources) ─► InstanceSpec
//!         pedestal::for_kind (detect: host default, driver) ─► Pedestal::create
//!         ─► Partition + Link ─► instance::Instance (state::write for `delete`)
//! Start:  Partition::start; the I/O loop (one thread, smol) relays containerd's
//!         FIFOs (or log URIs: stdio) ⇄ HostEndpoint (agent mode) or raw bytes ⇄
//!         the link
//! Kill/Pause/Update/Stats/...: service (ttrpc Task API) ─► Instance ─► Partition
//!         or a message to the agent (Stop, Signal, Resize, StatsRequest)
//! End:    agent Exited / process exit / console hang-up ─► exit status rules
//!         (instance) ─► TaskExit; Delete releases the partition and the state
//! ```
//!
//! The ttrpc adapter (`service`) is thin: no engine type depends on ttrpc.
//! `cli` is the `micrun` command (src/bin/micrun.rs); the shim does not use it.
//! User documentation: docs/shim.md; design: docs/architecture.md.

pub mod annotations;
pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
pub mod firmware;
pub mod image;
pub mod instance;
pub mod oci;
pub mod pedestal;
pub mod resources;
pub mod service;
pub mod spec;
pub mod state;
pub mod stdio;
pub mod termination;
