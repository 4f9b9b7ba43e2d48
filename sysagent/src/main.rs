//! Placeholder until the component lands.
fn main() {}
