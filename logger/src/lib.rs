//! Structured, leveled, asynchronous logging with console, file and Kafka outputs.
