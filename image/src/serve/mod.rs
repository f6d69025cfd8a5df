//! `rescue-image serve DIR`: the fleet's HTTP/1.1 server for BMC virtual media (ISOs streamed
//! with Range requests, which Python's http.server answers with 200 and breaks ISO boot) and for
//! the reports the booted agent POSTs back.

pub mod range;
pub mod request;
