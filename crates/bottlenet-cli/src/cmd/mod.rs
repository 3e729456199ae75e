//! One module per subcommand.

pub mod codec;
pub mod frame;
