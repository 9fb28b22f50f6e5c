//! Raw FFI of the Tessera C ABI (`abi/include/tessera/tessera.h`,
//! `tessera_ir.h`, `tessera_types.h`).
//!
//! `generated.rs` is written by `scripts/gen_bindings.py` from the headers
//! (never edit it by hand; CTest `bindings.generated` fails when it is stale).
//! `dlpack` is DLPack's own layout, which the ABI only forward-declares.
//! Everything is `unsafe`; use the `tessera` crate for a safe API.
#![no_std]

mod generated;
pub use generated::*;

pub mod dlpack;
