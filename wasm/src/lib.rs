pub use statesync_core;
