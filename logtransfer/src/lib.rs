//! Consumes Kafka and indexes into Elasticsearch with batched _bulk requests.
