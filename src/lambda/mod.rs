//! What we speak of the Lambda APIs (`../shared/spec/lambda-apis.md`): events, delivered records,
//! request bodies and the Extensions API client. Knows nothing of the actors.

pub mod client;
pub mod events;
pub mod records;
pub mod requests;
