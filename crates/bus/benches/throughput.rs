//! Bus throughput bench (being written).

fn main() {}
