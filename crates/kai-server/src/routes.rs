//! Route handlers, one module per resource. Handlers stay thin: parse, authorize, call one
//! service, convert.

pub mod audit;
pub mod events;
pub mod system;
