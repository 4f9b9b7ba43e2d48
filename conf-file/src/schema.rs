//! The sections and keys a config struct accepts, read from its `Deserialize` implementation
//! (no extra trait to implement): derived structs tell the deserializer their field names.
//!
//! [`Schema::of`] deserializes the type from probes that record those names: once from an
//! empty input (the top-level fields), then once per top-level field with only that field
//! present (the keys of that section). Fields that are plain values, or sections that are
//! maps (any key), are recorded as such. Types that do not list their fields (a
//! `#[serde(flatten)]`, a hand-written `Deserialize` reading a map) give an unknown schema.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::value::{Error as ProbeError, StrDeserializer};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};

/// What a top-level field of a config struct is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A section: a struct with these keys.
    Section(BTreeSet<String>),
    /// A section that is a map: any key.
    Map,
    /// A plain value at the top level.
    Value,
}

/// The top-level fields of a config struct, and the keys of its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Option<BTreeMap<String, Field>>,
}

impl Schema {
    /// Reads the schema of `T` (see the [module docs](self)); cheap, for start-up.
    pub fn of<T: for<'de> Deserialize<'de>>() -> Schema {
        let root = Recorder::default();
        // Errors are expected (missing required fields, values the probe cannot give):
        // the names were recorded before them.
        let _ = T::deserialize(Probe::Root {
            field: None,
            recorder: &root,
        });
        let Some(Found::Struct(names)) = root.found.into_inner() else {
            return Schema { fields: None };
        };
        let fields = names
            .iter()
            .map(|&name| {
                let recorder = Recorder::default();
                let _ = T::deserialize(Probe::Root {
                    field: Some(name),
                    recorder: &recorder,
                });
                let field = match recorder.found.into_inner() {
                    Some(Found::Struct(keys)) => {
                        Field::Section(keys.iter().map(|&k| k.to_owned()).collect())
                    }
                    Some(Found::Map) => Field::Map,
                    None => Field::Value,
                };
                (name.to_owned(), field)
            })
            .collect();
        Schema {
            fields: Some(fields),
        }
    }

    /// A schema that accepts every section and key (for types whose fields are unknown).
    pub fn unknown() -> Schema {
        Schema { fields: None }
    }

    /// Whether the fields are known; when not, [`Schema::accepts`] says yes to everything.
    pub fn is_known(&self) -> bool {
        self.fields.is_some()
    }

    /// The top-level fields by name, if known.
    pub fn fields(&self) -> Option<&BTreeMap<String, Field>> {
        self.fields.as_ref()
    }

    /// Whether `[section] key` exists.
    pub fn accepts(&self, section: &str, key: &str) -> bool {
        match &self.fields {
            None => true,
            Some(fields) => match fields.get(section) {
                Some(Field::Section(keys)) => keys.contains(key),
                Some(Field::Map) => true,
                Some(Field::Value) | None => false,
            },
        }
    }
}

#[derive(Debug)]
enum Found {
    Struct(&'static [&'static str]),
    Map,
}

#[derive(Default)]
struct Recorder {
    found: RefCell<Option<Found>>,
}

/// The deserializers handed to `T::deserialize`.
enum Probe<'r> {
    /// The config struct itself: records its fields (when `field` is `None`), or presents
    /// only `field` with a [`Probe::Field`] value.
    Root {
        field: Option<&'static str>,
        recorder: &'r Recorder,
    },
    /// The value of one top-level field: records what it is, then gives nothing.
    Field { recorder: &'r Recorder },
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        // A plain value: nothing to record; stop here.
        Err(ProbeError::custom("schema probe: not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        match self {
            Probe::Root {
                field: None,
                recorder,
            } => {
                *recorder.found.borrow_mut() = Some(Found::Struct(fields));
                visitor.visit_map(Entries {
                    field: None,
                    recorder,
                })
            }
            Probe::Root {
                field: Some(field),
                recorder,
            } => visitor.visit_map(Entries {
                field: Some(field),
                recorder,
            }),
            Probe::Field { recorder } => {
                *recorder.found.borrow_mut() = Some(Found::Struct(fields));
                visitor.visit_map(Entries {
                    field: None,
                    recorder,
                })
            }
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        match self {
            Probe::Field { recorder } => {
                *recorder.found.borrow_mut() = Some(Found::Map);
                visitor.visit_map(Entries {
                    field: None,
                    recorder,
                })
            }
            // A top level read as a map has no field list: the schema stays unknown.
            Probe::Root { .. } => Err(ProbeError::custom("schema probe: a map at the top")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

/// The map a probed struct sees: empty, or the one field being probed.
struct Entries<'r> {
    field: Option<&'static str>,
    recorder: &'r Recorder,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        match self.field {
            Some(field) => seed
                .deserialize(StrDeserializer::<ProbeError>::new(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        self.field = None;
        seed.deserialize(Probe::Field {
            recorder: self.recorder,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Kafka;
    use std::collections::HashMap;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Required {
        must: String,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Conf {
        kafka: Kafka,
        maybe: Option<Kafka>,
        outputs: HashMap<String, String>,
        level: String,
        #[serde(skip)]
        skipped: u8,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Strict {
        first: Required,
        second: Required,
    }

    #[test]
    fn sections_keys_maps_and_values_are_found() {
        let schema = Schema::of::<Conf>();
        let fields = schema.fields().unwrap();
        let keys: BTreeSet<String> = ["address", "chan_size"].map(String::from).into();
        assert_eq!(fields["kafka"], Field::Section(keys.clone()));
        assert_eq!(fields["maybe"], Field::Section(keys));
        assert_eq!(fields["outputs"], Field::Map);
        assert_eq!(fields["level"], Field::Value);
        assert!(!fields.contains_key("skipped"));
        assert!(schema.accepts("kafka", "chan_size"));
        assert!(
            !schema.accepts("kafka", "channel_size"),
            "the serialized name counts"
        );
        assert!(schema.accepts("outputs", "anything"));
        assert!(!schema.accepts("level", "x"));
        assert!(!schema.accepts("log", "level"));
    }

    #[test]
    fn required_fields_do_not_hide_the_schema() {
        let schema = Schema::of::<Strict>();
        assert!(schema.accepts("first", "must"));
        assert!(schema.accepts("second", "must"));
        assert!(!schema.accepts("second", "may"));
    }

    #[test]
    fn a_map_at_the_top_is_unknown_and_accepts_everything() {
        let schema = Schema::of::<HashMap<String, String>>();
        assert!(!schema.is_known());
        assert!(schema.accepts("any", "thing"));
        assert!(Schema::unknown().accepts("a", "b"));
    }
}
