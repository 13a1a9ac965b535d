//! egress-tracer agent library.
