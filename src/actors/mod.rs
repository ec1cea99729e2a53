//! The actix actors: LifecycleActor polls the Extensions API, LogReceiver is the HTTP listener,
//! BatchActor holds the buffer and thresholds, ShipperActor talks to S3. They exchange the typed
//! messages of [`messages`].

pub mod batch;
pub mod lifecycle;
pub mod messages;
pub mod receiver;
pub mod shipper;
